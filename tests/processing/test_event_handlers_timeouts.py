"""Tests of per-message deadlines and graceful, cancelling shutdown."""

from __future__ import annotations

import asyncio

import pytest

from snippets.processing.event_handlers_timeouts import (
    Message,
    StuckHandlerError,
    TimedConsumer,
    main,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def queue_of(*ids: str) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    for message_id in ids:
        queue.put_nowait(Message(message_id))
    return queue


async def until(predicate, what: str, deadline: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds; fail naming ``what`` after the deadline."""
    try:
        async with asyncio.timeout(deadline):
            while not predicate():
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(f"not within {deadline} s: {what}") from None


def test_a_hung_handler_costs_one_deadline_and_the_next_message_is_handled():
    async def scenario():
        async def handler(message: Message) -> None:
            if message.message_id == "hung":
                await asyncio.Event().wait()

        consumer = TimedConsumer(handler, timeout=0.05)
        consumer.start(queue_of("a", "hung", "b"))
        await until(lambda: consumer.acked == ["a", "b"], "b handled")
        await consumer.stop(grace=1)
        return consumer

    consumer = run(scenario())
    assert consumer.nacked == {"hung": "timed out after 0.05 s"}


def test_stopping_an_idle_consumer_returns_at_once_and_nacks_nothing():
    async def scenario():
        consumer = TimedConsumer(lambda m: asyncio.sleep(0), timeout=1)
        queue = queue_of("a")
        consumer.start(queue)
        await until(lambda: consumer.acked == ["a"], "a handled")
        await consumer.stop(grace=5)
        return consumer

    consumer = run(scenario())
    assert consumer.nacked == {}


def test_the_message_in_flight_may_finish_within_the_grace_period_and_no_other_starts():
    async def scenario():
        started, release = asyncio.Event(), asyncio.Event()

        async def handler(message: Message) -> None:
            started.set()
            await release.wait()

        consumer = TimedConsumer(handler, timeout=5)
        queue = queue_of("a", "b", "c")
        consumer.start(queue)
        await started.wait()
        stopping = asyncio.create_task(consumer.stop(grace=5))
        await asyncio.sleep(0)
        release.set()
        await stopping
        return consumer, queue.qsize()

    consumer, left = run(scenario())
    assert consumer.acked == ["a"] and consumer.nacked == {} and left == 2


def test_past_the_grace_period_the_handler_is_cancelled_cleans_up_and_is_not_acked():
    async def scenario():
        started, cleaned = asyncio.Event(), []

        async def handler(message: Message) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(message.message_id)  # e.g. release a lease, close a stream

        consumer = TimedConsumer(handler, timeout=5)
        consumer.start(queue_of("a"))
        await started.wait()
        await consumer.stop(grace=0.01)
        return consumer, cleaned

    consumer, cleaned = run(scenario())
    assert consumer.acked == [] and consumer.nacked == {"a": "cancelled by shutdown"}
    assert cleaned == ["a"]


def test_a_handler_that_swallows_cancellation_is_reported_instead_of_awaited_forever():
    async def scenario():
        started, let_go = asyncio.Event(), asyncio.Event()

        async def stubborn(message: Message) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await let_go.wait()  # the bug: carries on as if nothing happened

        consumer = TimedConsumer(stubborn, timeout=5)
        consumer.start(queue_of("a"))
        await started.wait()
        with pytest.raises(StuckHandlerError, match="does it swallow CancelledError"):
            await consumer.stop(grace=0.01)
        let_go.set()  # let the test end cleanly
        await consumer.stop(grace=1)
        return consumer

    consumer = run(scenario())
    assert consumer.acked == ["a"]  # it even acknowledged: shutdown lost control of it


def test_a_deadline_must_be_positive_and_stop_before_start_is_harmless():
    with pytest.raises(ValueError, match="timeout must be positive"):
        TimedConsumer(lambda m: asyncio.sleep(0), timeout=0)
    run(TimedConsumer(lambda m: asyncio.sleep(0), timeout=1).stop(grace=1))


def test_the_demo_times_out_e2_finishes_e3_leaves_e4_and_cancels_e5(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == [
        "acked   : ['e-1', 'e-3']",
        "nacked  : e-2 (timed out after 0.2 s) -> the broker delivers it again",
        "untaken : ['e-4']",
    ]
    assert out[-2] == "nacked  : e-5 (cancelled by shutdown) -> the broker delivers it again"
