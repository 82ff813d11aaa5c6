"""Publish-to-all-handlers-done throughput: EventBus vs pyee vs bare asyncio.gather.

All three dispatch the same 2,000 events to the same async handlers and are
timed in one run, so the ratios hold even on a noisy machine.
"""

from __future__ import annotations

import asyncio

from pyee.asyncio import AsyncIOEventEmitter

from snippets.fundamentals.core_concepts_event_bus import EventBus
from tests.bench import support

EVENTS = 2_000
SUBSCRIBERS = (1, 10, 100)


def make_handlers(count: int, calls: list[int]):
    """Distinct handler functions (pyee keys listeners by function)."""

    def make():
        async def handler(event: object) -> None:
            calls[0] += 1

        return handler

    return [make() for _ in range(count)]


async def with_bus(subscribers: int) -> int:
    calls = [0]
    bus = EventBus()
    for handler in make_handlers(subscribers, calls):
        bus.subscribe("coaching.entries.created", handler)
    for i in range(EVENTS):
        await bus.publish("coaching.entries.created", i)
    await bus.join()
    await bus.close()
    return calls[0]


async def with_pyee(subscribers: int) -> int:
    calls = [0]
    emitter = AsyncIOEventEmitter()
    for handler in make_handlers(subscribers, calls):
        emitter.add_listener("coaching.entries.created", handler)
    for i in range(EVENTS):
        emitter.emit("coaching.entries.created", i)
    await emitter.wait_for_complete()
    return calls[0]


async def with_gather(subscribers: int) -> int:
    calls = [0]
    handlers = make_handlers(subscribers, calls)
    for i in range(EVENTS):
        await asyncio.gather(*(handler(i) for handler in handlers))
    return calls[0]


def measure(dispatch, subscribers: int) -> float:
    def once() -> None:
        calls = asyncio.run(dispatch(subscribers))
        assert calls == EVENTS * subscribers, (dispatch.__name__, calls)

    return support.median_seconds(once, repeats=5)


def main() -> None:
    rows = []
    for subscribers in SUBSCRIBERS:
        bus, pyee, floor = (measure(d, subscribers) for d in (with_bus, with_pyee, with_gather))
        rows.append([subscribers, f"{EVENTS / bus:,.0f}", f"{EVENTS / pyee:,.0f}",
                     f"{EVENTS / floor:,.0f}", f"{bus / floor:.2f}"])
        print(rows[-1], flush=True)
    path = support.write(
        "fundamentals/core_concepts_event_bus",
        columns=["Subscribers", "EventBus (events/s)", "pyee (events/s)",
                 "asyncio.gather (events/s)", "EventBus time / gather time"],
        rows=rows,
        command="make bench",
        note=f"{EVENTS:,} events per run, median of 5 runs after 1 warm-up; "
             "target: EventBus time at most 1.5 x the gather floor.",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
