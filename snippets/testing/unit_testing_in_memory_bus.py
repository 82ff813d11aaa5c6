"""Testing an event handler through the in-memory bus it runs on, not around it.

Calling ``tracker.on_entry(event)`` directly tests the handler's logic and
nothing else: not the channel it subscribes to, not what it publishes, not
what happens when the same event arrives twice. These tests wire the goal
tracker to a real in-memory bus, publish exactly what the journal publishes,
and wait with :meth:`InMemoryBus.drain` until every handler has finished.
``drain`` also re-raises any handler failure: a bus isolates failures, so
without it a crashing handler would make a test pass in silence.

``pytest thisfile.py`` runs the tests against :class:`GoalTracker`;
``main()`` also runs them against a tracker subscribed to a misspelt channel,
a bug that every direct-call unit test of the handler misses.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Event:
    channel: str
    data: dict[str, Any]


class HandlerFailed(AssertionError):
    """Raised by :meth:`InMemoryBus.drain` when a handler raised since the last drain."""


# --8<-- [start:bus]
class InMemoryBus:
    """Exact channel names, or ``#`` for every channel; one mailbox and worker per handler."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, asyncio.Queue[Event]]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.failures: list[str] = []

    def subscribe(self, channel: str, handler: Callable[[Event], Awaitable[None]],
                  name: str) -> None:
        mailbox: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.append((channel, mailbox))
        self._workers.append(asyncio.create_task(self._work(mailbox, handler, name)))

    async def publish(self, channel: str, data: dict[str, Any]) -> None:
        for pattern, mailbox in self._subscribers:
            if pattern in (channel, "#"):
                self._pending += 1
                self._idle.clear()
                mailbox.put_nowait(Event(channel, data))

    async def _work(self, mailbox: asyncio.Queue[Event],
                    handler: Callable[[Event], Awaitable[None]], name: str) -> None:
        while True:
            event = await mailbox.get()
            try:
                await handler(event)
            except Exception as error:  # noqa: BLE001 - isolated, kept for drain() to report
                self.failures.append(f"{name} on {event.channel}: {error!r}")
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def drain(self) -> None:
        """Wait until no event is queued or being handled; raise if a handler failed."""
        await self._idle.wait()
        failures, self.failures = self.failures, []
        if failures:
            raise HandlerFailed("; ".join(failures))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
# --8<-- [end:bus]


# --8<-- [start:tracker]
DISTANCE = re.compile(r"(\d+(?:\.\d+)?)\s*km\b")


class GoalTracker:
    """Adds the kilometres an entry mentions to its writer's running goal."""

    listens_to = "journal.entry_written"

    def __init__(self, bus: InMemoryBus) -> None:
        self.bus = bus
        self.totals: dict[str, float] = {}
        self.seen: set[str] = set()
        bus.subscribe(self.listens_to, self.on_entry, name=type(self).__name__)

    async def on_entry(self, event: Event) -> None:
        entry = event.data
        if entry["entry_id"] in self.seen:
            return  # delivered twice: counted once
        self.seen.add(entry["entry_id"])
        km = sum(float(n) for n in DISTANCE.findall(entry["text"]))
        if km:
            total = self.totals[entry["user"]] = self.totals.get(entry["user"], 0.0) + km
            await self.bus.publish("goals.progress_logged", {
                "user": entry["user"], "entry_id": entry["entry_id"], "km": km, "total_km": total})


class GoalTrackerOnTheWrongChannel(GoalTracker):
    """Deliberately broken: subscribes to a channel name the journal never uses."""

    listens_to = "journal.entry.written"
# --8<-- [end:tracker]


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Let pytest (and ``main``) call an async test; no test may take over 5 s."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=5))

    return run


async def wire(tracker_type: type[GoalTracker]) -> tuple[InMemoryBus, GoalTracker, list[Event]]:
    """A bus, the tracker on it, and a spy that records every event published."""
    bus = InMemoryBus()
    published: list[Event] = []

    async def spy(event: Event) -> None:
        published.append(event)

    bus.subscribe("#", spy, name="spy")
    return bus, tracker_type(bus), published


def entry(entry_id: str, text: str, user: str = "ana") -> dict[str, str]:
    return {"entry_id": entry_id, "user": user, "text": text}


# --8<-- [start:tests]
@synchronous
async def test_an_entry_with_a_distance_logs_progress_and_announces_it(tracker=GoalTracker):
    bus, _, published = await wire(tracker)
    async with bus:
        await bus.publish("journal.entry_written", entry("e1", "Ran 3.5 km by the river"))
        await bus.drain()
        announced = [e.data for e in published if e.channel == "goals.progress_logged"]
        assert announced == [{"user": "ana", "entry_id": "e1", "km": 3.5, "total_km": 3.5}], (
            f"after one entry the bus carried {[e.channel for e in published]}")


@synchronous
async def test_an_entry_without_a_distance_announces_nothing(tracker=GoalTracker):
    bus, _, published = await wire(tracker)
    async with bus:
        await bus.publish("journal.entry_written", entry("e1", "Slept badly, no run"))
        await bus.drain()
        assert [e.channel for e in published] == ["journal.entry_written"]


@synchronous
async def test_a_redelivered_entry_is_counted_once(tracker=GoalTracker):
    bus, _, published = await wire(tracker)
    async with bus:
        for _ in range(2):
            await bus.publish("journal.entry_written", entry("e1", "Ran 2 km"))
        await bus.publish("journal.entry_written", entry("e2", "Ran 4 km"))
        await bus.drain()
        totals = [e.data["total_km"] for e in published if e.channel == "goals.progress_logged"]
        assert totals == [2.0, 6.0], f"running totals announced: {totals}"


@synchronous
async def test_each_writer_has_their_own_total(tracker=GoalTracker):
    bus, goals, _ = await wire(tracker)
    async with bus:
        await bus.publish("journal.entry_written", entry("e1", "Ran 5 km", user="ana"))
        await bus.publish("journal.entry_written", entry("e2", "Ran 1 km", user="ben"))
        await bus.drain()
        assert goals.totals == {"ana": 5.0, "ben": 1.0}, f"totals: {goals.totals}"
# --8<-- [end:tests]


TESTS = (test_an_entry_with_a_distance_logs_progress_and_announces_it,
         test_an_entry_without_a_distance_announces_nothing,
         test_a_redelivered_entry_is_counted_once,
         test_each_writer_has_their_own_total)


def run_tests(tracker: type[GoalTracker]) -> list[tuple[str, str | None]]:
    """Run every test against ``tracker``: (name, None) or (name, why it failed)."""
    results: list[tuple[str, str | None]] = []
    for test in TESTS:
        try:
            test(tracker)
        except AssertionError as failure:
            results.append((test.__name__, str(failure).splitlines()[0]))
        else:
            results.append((test.__name__, None))
    return results


def main() -> None:
    for tracker in (GoalTracker, GoalTrackerOnTheWrongChannel):
        results = run_tests(tracker)
        failed = [(name, why) for name, why in results if why]
        print(f"{tracker.__name__} (listens to {tracker.listens_to!r}): "
              f"{len(results) - len(failed)} passed, {len(failed)} failed")
        for name, why in failed:
            print(f"  caught by {name}:\n    {why}")


if __name__ == "__main__":
    main()
