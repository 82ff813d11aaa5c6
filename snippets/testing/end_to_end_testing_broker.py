"""The coaching flow end to end across Redis Streams, asserted with await-until and lag.

The same app and the same test as on the in-memory bus, with every channel a
Redis stream and every agent a consumer group reading it with ``XREADGROUP``
and acknowledging with ``XACK``. On a real broker there is no ``drain()``:
the test waits until every group has read and acknowledged everything
(``XINFO GROUPS`` reports ``lag`` 0 and nothing pending) before it moves the
clock to 21:00.

The deliberately broken app puts the mood agent and the goal tracker in one
consumer group, a mistake only a real broker can make: a group shares its
entries among its consumers, so each agent sees only some of the entries.
Which agent gets which varies from run to run; that the test fails does not.
Point it at a Redis you may write to with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import random
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

T = TypeVar("T")
CET = timezone(timedelta(hours=1))
Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ManualClock:
    """The app's only source of time; tests move it (within one day, in this short version)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._daily: list[tuple[time, Callable[[date], Awaitable[None]]]] = []

    def now(self) -> datetime:
        return self._now

    def every_day_at(self, at: time, job: Callable[[date], Awaitable[None]]) -> None:
        self._daily.append((at, job))

    async def advance_to(self, when: datetime) -> None:
        """Move forward to ``when`` on the same day, running each daily job it passes."""
        for at, job in self._daily:
            due = datetime.combine(self._now.date(), at, tzinfo=self._now.tzinfo)
            if self._now < due <= when:
                await job(due.date())
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


# --8<-- [start:bus]
class RedisStreamsBus:
    """Channels are streams under a namespace; each subscription is a consumer group."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.groups: list[tuple[str, str]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.failures: list[str] = []
        self.running = True

    async def subscribe(self, channel: str, handler: Handler, group: str) -> None:
        stream = f"{self.namespace}:{channel}"
        try:
            await self.client.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):  # the group exists: join it
                raise
        self.groups.append((stream, group))
        consumer = f"{handler.__name__}-{len(self.tasks)}"
        self.tasks.append(asyncio.create_task(self._consume(stream, group, consumer, handler)))

    async def _consume(self, stream: str, group: str, consumer: str, handler: Handler) -> None:
        while self.running:  # stopped by close() within one 50 ms block
            reply = await self.client.xreadgroup(group, consumer, {stream: ">"}, count=10, block=50)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    try:
                        await handler(json.loads(fields["event"]))
                    except Exception as error:  # noqa: BLE001 - isolate it, keep it for the test
                        self.failures.append(f"{handler.__name__}: {error!r}")
                    await self.client.xack(stream, group, entry_id)

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self.client.xadd(f"{self.namespace}:{channel}", {"event": json.dumps(event)})

    async def caught_up(self) -> bool:
        """True when every group has read (lag 0) and acknowledged (0 pending) everything."""
        for stream, group in self.groups:
            for info in await self.client.xinfo_groups(stream):
                if info["name"] == group and (info["lag"] != 0 or info["pending"]):
                    return False
        return True

    async def close(self) -> None:
        self.running = False
        await asyncio.gather(*self.tasks)
        await self.client.aclose()
# --8<-- [end:bus]


MOODS = ("proud", "tired", "happy", "anxious", "calm")
KM = re.compile(r"(\d+(?:\.\d+)?)\s*km\b")


# --8<-- [start:app]
class CoachingApp:
    """The coaching app of the in-memory example, its agents subscribed as consumer groups."""

    def __init__(self, bus: RedisStreamsBus, clock: ManualClock, ids: SeededIds) -> None:
        self.bus, self.clock, self.ids = bus, clock, ids
        self.goals: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str]] = []
        self.day: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.reflections: dict[tuple[str, date], str] = {}

    def group_for(self, handler: Handler) -> str:
        return handler.__name__  # one group per agent: every agent sees every entry

    async def start(self) -> None:
        for channel, handler in [("journal.entry_written", self.mood_agent),
                                 ("journal.entry_written", self.goal_tracker),
                                 ("goals.progress_logged", self.coach)]:
            await self.bus.subscribe(channel, handler, self.group_for(handler))
        for channel in ("journal.entry_written", "coaching.mood_noted",
                        "goals.progress_logged", "coaching.message_sent"):
            await self.bus.subscribe(channel, self.reflection_collector, "reflection")
        self.clock.every_day_at(time(21, 0), self.write_reflections)
# --8<-- [end:app]

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
            await self.bus.publish("goals.progress_logged",
                                   {"kind": "progress", "user": entry["user"], **goal})

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


class AppSharingOneGroup(CoachingApp):
    """Deliberately broken: the mood agent and the goal tracker join one consumer group."""

    def group_for(self, handler: Handler) -> str:
        return "agents" if handler.__name__ in ("mood_agent", "goal_tracker") else handler.__name__


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Let pytest call an async test; no test may take over 20 s."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=20))

    return run


MORNING = datetime(2025, 3, 14, 7, 0, tzinfo=CET)


# --8<-- [start:test]
@synchronous
async def test_an_entry_flows_through_every_agent_on_redis(app_type=CoachingApp, namespace="e2e"):
    client = redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                            decode_responses=True)
    await client.delete(*[f"{namespace}:{c}" for c in ("journal.entry_written",
                          "coaching.mood_noted", "goals.progress_logged", "coaching.message_sent")])
    app = app_type(RedisStreamsBus(client, namespace), ManualClock(MORNING), SeededIds(seed=7))
    await app.start()
    app.set_goal("ana", "Run 10 km this week", target_km=10)
    await app.write_entry("ana", "Ran 4 km before work. Proud of it.")
    await app.clock.advance_to(MORNING.replace(hour=19))
    await app.write_entry("ana", "Another 6 km in the rain, tired now")
    try:
        await await_until(lambda: app.sent, what="the coach to congratulate ana", timeout=5.0)
        await await_until(app.bus.caught_up, what="every group to catch up")
        await app.clock.advance_to(MORNING.replace(hour=21, minute=30))
        reflection = await await_until(lambda: app.reflections.get(("ana", MORNING.date())),
                                       what="ana's evening reflection")
        assert reflection == ("Friday 14 March: 2 entries; moods: proud, tired; "
                              "Run 10 km this week: 10 of 10 km; "
                              "coach: Goal reached: Run 10 km this week. Well done!"), reflection
        assert app.bus.failures == []
    finally:
        await app.bus.close()
# --8<-- [end:test]


def main() -> int:
    for app_type in (CoachingApp, AppSharingOneGroup):
        try:
            test_an_entry_flows_through_every_agent_on_redis(app_type)
            print(f"{app_type.__name__}: passed on Redis Streams")
        except AssertionError:
            print(f"{app_type.__name__}: caught by the end-to-end test")
        except (OSError, RedisConnectionError) as error:
            print(f"cannot reach Redis: {error}\nSet REDIS_URL to a Redis you may write to.",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
