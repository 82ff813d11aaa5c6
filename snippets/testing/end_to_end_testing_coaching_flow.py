"""An end-to-end test of the coaching flow: entry, agents, goal progress, evening reflection.

The whole app runs on an in-memory bus: the journal publishes an entry, the
mood agent and the goal tracker react, the coach reacts to the tracker, and
at 21:00 the reflection writer sums up each writer's day. The test drives it
only from the outside (write entries, move the clock) and observes only what
a user would see (the coach's messages, the reflection), with
:func:`await_until`: poll a condition, return as soon as it holds, fail at a
deadline with what was last seen. No fixed sleeps, so no flaky waits.

Time and ids are injected: a :class:`ManualClock` that the test moves to
21:00 in an instant, and :class:`SeededIds` that produce the same ids on
every run. ``main()`` runs the test against the app and against one in
which the goal tracker's channel was renamed, a bug no unit test sees.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, TypeVar

T = TypeVar("T")
CET = timezone(timedelta(hours=1))


# --8<-- [start:determinism]
class ManualClock:
    """The app's only source of time. Tests move it; daily jobs run when it passes them."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._daily: list[tuple[time, Callable[[date], Awaitable[None]]]] = []

    def now(self) -> datetime:
        return self._now

    def every_day_at(self, at: time, job: Callable[[date], Awaitable[None]]) -> None:
        self._daily.append((at, job))

    async def advance_to(self, when: datetime) -> None:
        """Move forward to ``when``, running each daily job whose time is passed, in order."""
        if when < self._now:
            raise ValueError(f"time only moves forward: {when} is before {self._now}")
        day = self._now.date()
        while day <= when.date():
            for at, job in sorted(self._daily, key=lambda daily: daily[0]):
                due = datetime.combine(day, at, tzinfo=self._now.tzinfo)
                if self._now < due <= when:
                    self._now = due
                    await job(day)
            day += timedelta(days=1)
        self._now = when


class SeededIds:
    """UUIDs from a seeded generator: random-looking, identical on every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def new(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))


async def await_until(check: Callable[[], T | Awaitable[T]], *, what: str,
                      timeout: float = 2.0, interval: float = 0.005) -> T:
    """Return ``check()`` as soon as it is truthy; after ``timeout`` s fail, saying what was seen.

    ``check`` may be a coroutine function, to ask a broker instead of memory.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = check()
        if inspect.isawaitable(seen):
            seen = await seen
        if seen:
            return seen
        if loop.time() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last saw {seen!r}")
        await asyncio.sleep(interval)  # a poll, not a guess: it returns the moment check() holds
# --8<-- [end:determinism]


class Bus:
    """An in-memory bus: exact channel names, a mailbox and a worker per subscriber."""

    def __init__(self) -> None:
        self._routes: dict[str, list[asyncio.Queue[dict[str, Any]]]] = defaultdict(list)
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self.failures: list[str] = []

    def caught_up(self) -> bool:
        """True when no event is queued or being handled: every subscriber caught up."""
        return self._in_flight == 0

    def subscribe(self, channel: str, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        mailbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._routes[channel].append(mailbox)

        async def work() -> None:
            while True:
                event = await mailbox.get()
                try:
                    await handler(event)
                except Exception as error:  # noqa: BLE001 - isolate it, keep it for the test
                    self.failures.append(f"{handler.__name__}: {error!r}")
                finally:
                    self._in_flight -= 1

        self._workers.append(asyncio.create_task(work()))

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        for mailbox in self._routes[channel]:
            self._in_flight += 1
            mailbox.put_nowait(event)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


# --8<-- [start:app]
MOODS = ("proud", "tired", "happy", "anxious", "calm")
KM = re.compile(r"(\d+(?:\.\d+)?)\s*km\b")


class CoachingApp:
    """Journal, mood agent, goal tracker, coach and reflection writer, wired by channels."""

    progress_channel = "goals.progress_logged"  # where the goal tracker publishes

    def __init__(self, clock: ManualClock, ids: SeededIds) -> None:
        self.bus, self.clock, self.ids = Bus(), clock, ids
        self.goals: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str]] = []            # (user, message) the coach sent
        self.day: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.reflections: dict[tuple[str, date], str] = {}

    async def start(self) -> None:
        self.bus.subscribe("journal.entry_written", self.mood_agent)
        self.bus.subscribe("journal.entry_written", self.goal_tracker)
        self.bus.subscribe("goals.progress_logged", self.coach)
        for channel in ("journal.entry_written", "coaching.mood_noted",
                        "goals.progress_logged", "coaching.message_sent"):
            self.bus.subscribe(channel, self.reflection_collector)
        self.clock.every_day_at(time(21, 0), self.write_reflections)

    def set_goal(self, user: str, title: str, target_km: float) -> None:
        self.goals[user] = {"title": title, "target_km": target_km, "total_km": 0.0}

    async def write_entry(self, user: str, text: str) -> str:
        entry_id = self.ids.new()
        await self.bus.publish("journal.entry_written", {
            "kind": "entry", "entry_id": entry_id, "user": user, "text": text,
            "written_at": self.clock.now().isoformat()})
        return entry_id

    async def mood_agent(self, entry: dict[str, Any]) -> None:
        for mood in (m for m in MOODS if m in entry["text"].lower()):
            await self.bus.publish("coaching.mood_noted",
                                   {"kind": "mood", "user": entry["user"], "mood": mood})

    async def goal_tracker(self, entry: dict[str, Any]) -> None:
        goal = self.goals.get(entry["user"])
        km = sum(float(n) for n in KM.findall(entry["text"]))
        if goal and km:
            goal["total_km"] += km
            await self.bus.publish(self.progress_channel, {"kind": "progress", "user": entry["user"],
                                                           "title": goal["title"], **goal})

    async def coach(self, progress: dict[str, Any]) -> None:
        if progress["total_km"] >= progress["target_km"]:
            message = f"Goal reached: {progress['title']}. Well done!"
            self.sent.append((progress["user"], message))
            await self.bus.publish("coaching.message_sent",
                                   {"kind": "coach", "user": progress["user"], "text": message})

    async def reflection_collector(self, event: dict[str, Any]) -> None:
        notes = self.day[event["user"]]
        if event["kind"] == "entry":
            notes["entries"].append(event["entry_id"])
        elif event["kind"] == "mood":
            notes["moods"].append(event["mood"])
        elif event["kind"] == "progress":
            notes["progress"].append(
                f"{event['title']}: {event['total_km']:g} of {event['target_km']:g} km")
        else:
            notes["coach"].append(event["text"])

    async def write_reflections(self, day: date) -> None:
        for user, notes in sorted(self.day.items()):
            progress = notes["progress"][-1] if notes["progress"] else "no goal progress"
            self.reflections[(user, day)] = (
                f"{day:%A %d %B}: {len(notes['entries'])} entries; "
                f"moods: {', '.join(notes['moods']) or 'none noted'}; {progress}; "
                f"coach: {' '.join(notes['coach']) or 'nothing sent'}")
        self.day.clear()


class AppWithRenamedChannel(CoachingApp):
    """Deliberately broken: the goal team renamed its channel; its own unit tests were updated."""

    progress_channel = "goals.progress"
# --8<-- [end:app]


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Let pytest call an async test; no test may take over 10 s."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=10))

    return run


MORNING = datetime(2025, 3, 14, 7, 0, tzinfo=CET)


# --8<-- [start:test]
@synchronous
async def test_an_entry_flows_through_every_agent_into_the_evening_reflection(app_type=CoachingApp):
    app = app_type(ManualClock(MORNING), SeededIds(seed=7))
    await app.start()
    app.set_goal("ana", "Run 10 km this week", target_km=10)
    await app.write_entry("ana", "Ran 4 km before work. Proud of it.")
    await app.clock.advance_to(MORNING.replace(hour=19))
    await app.write_entry("ana", "Another 6 km in the rain, tired now")

    await await_until(lambda: app.sent, what="the coach to congratulate ana", timeout=1.0)
    await await_until(app.bus.caught_up, what="every agent to catch up")
    await app.clock.advance_to(MORNING.replace(hour=21, minute=30))
    reflection = await await_until(lambda: app.reflections.get(("ana", MORNING.date())),
                                   what="ana's evening reflection")
    assert reflection == ("Friday 14 March: 2 entries; moods: proud, tired; "
                          "Run 10 km this week: 10 of 10 km; "
                          "coach: Goal reached: Run 10 km this week. Well done!")
    assert app.bus.failures == []
    await app.bus.close()
# --8<-- [end:test]


def main() -> None:
    ids = SeededIds(seed=7)
    print(f"seeded ids, the same on every run: {ids.new()[:8]}..., {ids.new()[:8]}...")
    for app_type in (CoachingApp, AppWithRenamedChannel):
        try:
            test_an_entry_flows_through_every_agent_into_the_evening_reflection(app_type)
            print(f"{app_type.__name__}: passed")
        except AssertionError as failure:
            print(f"{app_type.__name__}: caught\n  {failure}")


if __name__ == "__main__":
    main()
