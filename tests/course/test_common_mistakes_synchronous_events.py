"""Synchronous events: the waiting bus blocks and breaks its publisher; the queueing bus does not."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_synchronous_events import (
    QueueingBus,
    WaitingBus,
    main,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_the_demo_shows_the_publisher_breaking_only_with_the_waiting_bus(capsys):
    asyncio.run(main())
    assert capsys.readouterr().out == (
        "WaitingBus: publish raised ConnectionError('e-mail relay down'); handled by then:"
        " ['goal_tracker']\n"
        "WaitingBus: never handled: ['reminder_email', 'coach']; the journal got the relay's error\n"
        "QueueingBus: publish returned; handled by then: none\n"
        "QueueingBus: after drain: ['goal_tracker', 'coach'], failures recorded:"
        " [('reminder_email', 'e-mail relay down')]\n")


async def publish_while_a_handler_is_stuck(bus) -> bool:
    """Does publish return while a subscriber waits for something that never comes?"""
    stuck = asyncio.Event()

    async def slow_coach(entry: str) -> None:
        await stuck.wait()

    bus.subscribe(slow_coach)
    publishing = asyncio.create_task(bus.publish("entry"))
    for _ in range(20):
        await asyncio.sleep(0)
    returned = publishing.done()
    stuck.set()
    await publishing
    if isinstance(bus, QueueingBus):
        await bus.drain()
    return returned


def test_broken_the_publisher_waits_for_the_slowest_subscriber():
    assert run(publish_while_a_handler_is_stuck(WaitingBus())) is False


def test_fixed_the_publisher_returns_while_a_subscriber_is_still_busy():
    assert run(publish_while_a_handler_is_stuck(QueueingBus())) is True


async def deliver(bus, events: int, failing: set[int]) -> tuple[list[list[int]], int]:
    seen: list[list[int]] = [[] for _ in range(4)]
    errors = 0

    def make(index: int):
        async def handler(event: int) -> None:
            if index in failing:
                raise RuntimeError(f"handler {index} is broken")
            seen[index].append(event)
        handler.__name__ = f"handler_{index}"
        return handler

    for index in range(4):
        bus.subscribe(make(index))
    for event in range(events):
        try:
            await bus.publish(event)
        except RuntimeError:
            errors += 1
    if isinstance(bus, QueueingBus):
        await bus.drain()
    return seen, errors


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 3), min_size=1, max_size=3), st.integers(1, 20))
def test_broken_one_failing_subscriber_fails_the_publisher_and_starves_those_after_it(
        failing, events):
    seen, errors = run(deliver(WaitingBus(), events, failing))
    first = min(failing)
    assert errors == events  # every publish raised to the journal
    assert all(seen[i] == [] for i in range(first, 4))
    assert all(seen[i] == list(range(events)) for i in range(first))


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 3), min_size=1, max_size=3), st.integers(1, 20))
def test_fixed_failures_stay_with_their_subscriber_and_the_others_get_everything_in_order(
        failing, events):
    bus = QueueingBus()
    seen, errors = run(deliver(bus, events, failing))
    assert errors == 0
    for index in range(4):
        assert seen[index] == ([] if index in failing else list(range(events)))
    assert len(bus.failures) == events * len(failing)
    assert {who for who, _, _ in bus.failures} == {f"handler_{i}" for i in failing}


def test_fixed_concurrent_publishers_under_backpressure_lose_nothing_and_keep_each_ones_order():
    async def scenario():
        bus = QueueingBus()
        seen: list[list[tuple[str, int]]] = [[], []]

        def make(index: int):
            async def handler(event: tuple[str, int]) -> None:
                await asyncio.sleep(0)  # slower than the publishers: the queues fill up
                seen[index].append(event)
            return handler

        for index in range(2):
            bus.subscribe(make(index))

        async def publisher(name: str) -> None:
            for n in range(1_500):
                await bus.publish((name, n))

        await asyncio.gather(*(publisher(name) for name in "abc"))
        await bus.drain()
        return seen

    seen = run(scenario())
    for events in seen:
        assert len(events) == 4_500 and len(set(events)) == 4_500  # every event, once
        for name in "abc":
            assert [n for who, n in events if who == name] == list(range(1_500))
