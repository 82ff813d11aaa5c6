"""Tests of per-message deadlines and graceful, cancelling shutdown."""

from __future__ import annotations

import asyncio

import pytest

from snippets.processing.event_handlers_timeouts import (
    ConsumerCrashedError,
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
        await consumer.stop(grace=60)  # waiting out the grace would exceed run()'s 10 s
        return consumer

    consumer = run(scenario())
    assert consumer.nacked == {}


def test_stopping_a_consumer_that_never_got_a_message_returns_at_once():
    async def scenario():
        consumer = TimedConsumer(lambda m: asyncio.sleep(0), timeout=1)
        consumer.start(asyncio.Queue())
        await asyncio.sleep(0)  # the consumer now waits on the empty queue
        await consumer.stop(grace=60)
        return consumer

    consumer = run(scenario())
    assert consumer.acked == [] and consumer.nacked == {}


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
        with pytest.raises(StuckHandlerError, match=r"^handler still running 0\.01 s after cancel: "
                                                    r"does it swallow CancelledError\?$"):
            await consumer.stop(grace=0.01)
        let_go.set()  # let the test end cleanly
        await consumer.stop(grace=1)
        return consumer

    consumer = run(scenario())
    assert consumer.acked == ["a"]  # it even acknowledged: shutdown lost control of it


def test_a_deadline_must_be_positive_and_stop_before_start_is_harmless():
    with pytest.raises(ValueError, match=r"^timeout must be positive, not 0$"):
        TimedConsumer(lambda m: asyncio.sleep(0), timeout=0)
    run(TimedConsumer(lambda m: asyncio.sleep(0), timeout=1).stop(grace=1))


def test_the_demo_times_out_e2_nacks_e3_finishes_e4_leaves_e5_and_cancels_e6(capsys):
    asyncio.run(main())
    assert capsys.readouterr().out.splitlines() == [
        "-- deadline 0.2 s; stop with 1.0 s of grace while e-4 is in flight",
        "acked   : ['e-1', 'e-4']",
        "nacked  : e-2 (timed out after 0.2 s) -> the broker delivers it again",
        "nacked  : e-3 (failed: ValueError: no mood 'meh' on the scale) -> the broker delivers it again",
        "untaken : ['e-5']",
        "-- deadline 10.0 s; stop with 0.1 s of grace while e-6 is in flight",
        "acked   : []",
        "nacked  : e-6 (cancelled by shutdown) -> the broker delivers it again",
        "untaken : []",
    ]


# --- Defect 5 of issue 20: a failing handler must not end the consumer silently --------------

def test_a_failing_handler_nacks_its_message_with_the_error_and_the_consumer_goes_on():
    async def scenario():
        async def handler(message: Message) -> None:
            if message.message_id == "bad":
                raise ValueError("unknown mood 'meh'")

        consumer = TimedConsumer(handler, timeout=5)
        queue = queue_of("a", "bad", "b")
        consumer.start(queue)
        await until(lambda: consumer.acked == ["a", "b"], "b handled after bad failed")
        await consumer.stop(grace=1)
        return consumer

    consumer = run(scenario())
    assert consumer.nacked == {"bad": "failed: ValueError: unknown mood 'meh'"}


class Fatal(BaseException):
    """Not an Exception: something that does end the consumer."""


def test_stop_raises_when_the_consumer_has_crashed_and_the_message_is_nacked():
    async def scenario():
        raised = asyncio.Event()

        async def handler(message: Message) -> None:
            raised.set()
            raise Fatal("out of memory")

        consumer = TimedConsumer(handler, timeout=5)
        queue = queue_of("a", "b")
        consumer.start(queue)
        await raised.wait()  # the consumer's task ended in the same step
        with pytest.raises(ConsumerCrashedError) as crash:
            await consumer.stop(grace=1)
        return consumer, crash.value, queue

    consumer, crash, queue = run(scenario())
    assert str(crash) == "consumer crashed: Fatal: out of memory"
    assert isinstance(crash.__cause__, Fatal)
    assert consumer.acked == [] and consumer.nacked == {"a": "consumer crashed: Fatal: out of memory"}
    assert queue.qsize() == 1  # b was never taken


def test_a_handler_that_fails_during_the_grace_period_is_nacked_and_stop_returns():
    async def scenario():
        started, release = asyncio.Event(), asyncio.Event()

        async def handler(message: Message) -> None:
            started.set()
            await release.wait()
            raise ConnectionError("model went away")

        consumer = TimedConsumer(handler, timeout=5)
        queue = queue_of("a", "b")
        consumer.start(queue)
        await started.wait()
        stopping = asyncio.create_task(consumer.stop(grace=5))
        await asyncio.sleep(0)
        release.set()
        await stopping
        return consumer, queue.qsize()

    consumer, left = run(scenario())
    assert consumer.acked == [] and left == 1
    assert consumer.nacked == {"a": "failed: ConnectionError: model went away"}


def test_a_timeout_raised_inside_the_handler_is_a_failure_not_the_deadline():
    async def scenario():
        async def handler(message: Message) -> None:
            raise TimeoutError("model client gave up")

        consumer = TimedConsumer(handler, timeout=5)
        consumer.start(queue_of("a"))
        await until(lambda: "a" in consumer.nacked, "a nacked")
        await consumer.stop(grace=1)
        return consumer

    assert run(scenario()).nacked == {"a": "failed: TimeoutError: model client gave up"}


def test_a_handler_that_swallows_cancellation_also_defeats_the_deadline():
    async def scenario():
        async def stubborn(message: Message) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # the bug: the deadline's cancellation is swallowed

        consumer = TimedConsumer(stubborn, timeout=0.01)
        consumer.start(queue_of("a"))
        await until(lambda: consumer.acked == ["a"], "a acked")
        await consumer.stop(grace=1)
        return consumer

    consumer = run(scenario())
    assert consumer.acked == ["a"] and consumer.nacked == {}


def test_a_cancellation_from_outside_stop_ends_the_consumer_and_nacks_the_message():
    async def scenario():
        started = asyncio.Event()

        async def handler(message: Message) -> None:
            if message.message_id == "a":
                started.set()
                await asyncio.Event().wait()

        consumer = TimedConsumer(handler, timeout=5)
        queue = queue_of("a", "b")
        consumer.start(queue)
        await started.wait()
        consumer._task.cancel()  # e.g. the application's task group is torn down
        with pytest.raises(asyncio.CancelledError):
            await consumer._task
        return consumer, queue.qsize()

    consumer, left = run(scenario())
    assert consumer.acked == [] and consumer.nacked == {"a": "cancelled by shutdown"} and left == 1


def test_a_negative_grace_is_refused_and_the_consumer_keeps_consuming():
    async def scenario():
        consumer = TimedConsumer(lambda m: asyncio.sleep(0), timeout=1)
        queue = queue_of("a")
        consumer.start(queue)
        with pytest.raises(ValueError, match=r"^grace must be 0 or more, not -1$"):
            await consumer.stop(grace=-1)
        queue.put_nowait(Message("b"))
        await until(lambda: consumer.acked == ["a", "b"], "b handled after the refused stop")
        await consumer.stop(grace=0)  # the boundary: no grace at all is allowed
        return consumer

    assert run(scenario()).acked == ["a", "b"]


def test_starting_twice_is_refused_and_the_first_run_goes_on():
    async def scenario():
        consumer = TimedConsumer(lambda m: asyncio.sleep(0), timeout=1)
        queue = queue_of("a")
        consumer.start(queue)
        with pytest.raises(RuntimeError, match=r"^already started$"):
            consumer.start(queue_of("x"))
        await until(lambda: consumer.acked == ["a"], "a handled")
        await consumer.stop(grace=1)
        return consumer

    assert run(scenario()).acked == ["a"]
