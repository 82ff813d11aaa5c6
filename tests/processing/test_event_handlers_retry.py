"""The retry-and-dead-letter contract, run on the hand-written consumer and on tenacity's.

Every test takes ``impl``, one of the two modules, so both are held to the
same delays, the same dead letters and the same hostile inputs.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snippets.processing import event_handlers_retry, event_handlers_retry_tenacity
from snippets.processing.event_handlers_retry import Backoff, decode, main

IMPLEMENTATIONS = [event_handlers_retry, event_handlers_retry_tenacity]


@pytest.fixture(params=IMPLEMENTATIONS, ids=["hand-written", "tenacity"])
def impl(request):
    return request.param


class Fraction(random.Random):
    """A random source that always draws the same point of the range."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


class Recorder:
    """An injected sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def failing(times: int, error: type[Exception] | Exception):
    calls = []

    async def handler(data: dict) -> None:
        calls.append(data)
        if len(calls) <= times:
            raise error if isinstance(error, Exception) else error("downstream 503")

    handler.calls = calls
    return handler


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_transient_failures_are_retried_with_exactly_the_full_jitter_delays(impl):
    sleep = Recorder()
    handler = failing(3, impl.TransientError)
    consumer = impl.RetryingConsumer(handler, impl.Backoff(base=1.0, cap=30.0, max_attempts=5),
                                     sleep=sleep, rng=Fraction(0.5))
    assert run(consumer.process(impl.Message("m-1", b'{"entry": "e-1"}'))) is True
    assert sleep.delays == [0.5, 1.0, 2.0]  # half of the ceilings 1, 2, 4
    assert len(handler.calls) == 4 and consumer.dead_letters == []


def test_the_ceiling_stops_growing_at_the_cap(impl):
    sleep = Recorder()
    consumer = impl.RetryingConsumer(failing(6, ConnectionError),
                                     impl.Backoff(base=1.0, cap=5.0, max_attempts=7),
                                     sleep=sleep, rng=Fraction(1.0))
    assert run(consumer.process(impl.Message("m-1", b"{}"))) is True
    assert sleep.delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.floats(0.01, 2.0), st.floats(1.0, 60.0))
def test_every_delay_lies_between_zero_and_its_ceiling_and_a_seed_repeats_it(
        seed, attempts, base, cap):
    for impl in IMPLEMENTATIONS:
        backoff = impl.Backoff(base=base, cap=max(cap, base), max_attempts=attempts + 1)
        runs = []
        for _ in range(2):
            sleep = Recorder()
            consumer = impl.RetryingConsumer(failing(attempts, TimeoutError), backoff,
                                             sleep=sleep, rng=random.Random(seed))
            run(consumer.process(impl.Message("m-1", b"{}")))
            runs.append(sleep.delays)
        assert runs[0] == runs[1]
        for n, delay in enumerate(runs[0], 1):
            assert 0 <= delay <= min(backoff.cap, backoff.base * 2 ** (n - 1))


def test_a_message_that_keeps_failing_is_dead_lettered_with_reason_attempts_and_headers(impl):
    sleep = Recorder()
    handler = failing(99, impl.TransientError("coaching model returned 503"))
    consumer = impl.RetryingConsumer(handler, impl.Backoff(base=0.1, cap=1.0, max_attempts=4),
                                     sleep=sleep, rng=Fraction(0.0))
    headers = {"traceparent": "00-abc-01", "x-origin": "journal"}
    message = impl.Message("m-7", b'{"entry": "e-7"}', headers)
    assert run(consumer.process(message)) is False
    [letter] = consumer.dead_letters
    assert letter.message == message and letter.message.headers == headers
    assert letter.attempts == 4 and len(handler.calls) == 4 and len(sleep.delays) == 3
    assert letter.error_type == "TransientError"
    assert letter.reason == "gave up after 4 attempts: coaching model returned 503"


def test_a_permanent_error_is_dead_lettered_at_once_without_waiting(impl):
    sleep = Recorder()
    handler = failing(99, KeyError("entry"))
    consumer = impl.RetryingConsumer(handler, sleep=sleep)
    assert run(consumer.process(impl.Message("m-1", b'{"other": 1}'))) is False
    [letter] = consumer.dead_letters
    assert (letter.attempts, letter.error_type, sleep.delays) == (1, "KeyError", [])
    assert letter.reason == "rejected: 'entry'"


def test_one_attempt_means_no_retry(impl):
    consumer = impl.RetryingConsumer(failing(1, TimeoutError), impl.Backoff(max_attempts=1),
                                     sleep=Recorder())
    assert run(consumer.process(impl.Message("m-1", b"{}"))) is False
    assert consumer.dead_letters[0].attempts == 1


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"entry": "e-1"', "malformed payload: Expecting"),
    (b"\xff\xfe{}", "malformed payload: body is not UTF-8: invalid start byte at byte 0"),
    (b"[1, 2]", "malformed payload: body must be a JSON object, not list"),
    (b'{"words": NaN}', "malformed payload: body contains NaN"),
    (b'{"words": -Infinity}', "malformed payload: body contains -Infinity"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed payload: body of 200000 bytes exceeds"),
    (b"[" * 30_000 + b"]" * 30_000, "malformed payload: body is nested too deeply"),
    (b"", "malformed payload: Expecting value"),
])
def test_hostile_payloads_are_dead_lettered_with_a_reason_that_names_the_problem(
        impl, body, reason):
    handler = failing(0, Exception)
    consumer = impl.RetryingConsumer(handler, sleep=Recorder())
    assert run(consumer.process(impl.Message("m-1", body))) is False
    assert consumer.dead_letters[0].reason.startswith(reason)
    assert consumer.dead_letters[0].message.body == body  # kept as received, for redrive
    assert handler.calls == []


def test_a_poison_message_does_not_block_the_messages_behind_it(impl):
    async def handler(data: dict) -> None:
        if data["entry"] == "poison":
            raise impl.TransientError("always fails")
        if data["entry"] == "rejected":
            raise ValueError("entry text missing")

    async def scenario():
        sleep = Recorder()
        consumer = impl.RetryingConsumer(handler, impl.Backoff(max_attempts=3), sleep=sleep)
        queue: asyncio.Queue = asyncio.Queue()
        for n, entry in enumerate(["a", "poison", "b", "rejected", "c"]):
            queue.put_nowait(impl.Message(f"m-{n}", f'{{"entry": "{entry}"}}'.encode()))
        queue.put_nowait(impl.Message("m-5", b"not json"))
        queue.put_nowait(impl.Message("m-6", b'{"entry": "d"}'))
        queue.put_nowait(None)
        await consumer.run(queue)
        return consumer, sleep

    consumer, sleep = run(scenario())
    assert consumer.handled == ["m-0", "m-2", "m-4", "m-6"]
    assert [d.message.message_id for d in consumer.dead_letters] == ["m-1", "m-3", "m-5"]
    assert len(sleep.delays) == 2  # only the transient poison waited, and only twice


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64) | st.text(max_size=32).map(str.encode), max_size=8))
def test_random_bytes_never_crash_the_loop_and_each_message_is_handled_or_dead_lettered(bodies):
    for impl in IMPLEMENTATIONS:
        async def handler(data: dict) -> None:
            if not isinstance(data.get("entry"), str):
                raise ValueError("entry must be a string")

        async def scenario():
            consumer = impl.RetryingConsumer(handler, sleep=Recorder())
            queue: asyncio.Queue = asyncio.Queue()
            for n, body in enumerate([*bodies, b'{"entry": "sentinel"}']):
                queue.put_nowait(impl.Message(f"m-{n}", body))
            queue.put_nowait(None)
            await consumer.run(queue)
            return consumer

        consumer = run(scenario())
        seen = consumer.handled + [d.message.message_id for d in consumer.dead_letters]
        assert sorted(seen) == sorted(f"m-{n}" for n in range(len(bodies) + 1))
        assert consumer.handled[-1] == f"m-{len(bodies)}"
        assert all(d.reason for d in consumer.dead_letters)


def test_cancelling_the_consumer_mid_handler_is_not_swallowed_or_dead_lettered(impl):
    async def scenario():
        started = asyncio.Event()

        async def slow(data: dict) -> None:
            started.set()
            await asyncio.Event().wait()  # a handler that would never finish

        consumer = impl.RetryingConsumer(slow, sleep=Recorder())
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait(impl.Message("m-1", b"{}"))
        task = asyncio.create_task(consumer.run(queue))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return consumer

    consumer = run(scenario())
    assert consumer.dead_letters == [] and consumer.handled == []


@pytest.mark.parametrize("bad", [dict(base=0), dict(base=2, cap=1), dict(max_attempts=0)])
def test_an_impossible_backoff_is_refused(impl, bad):
    with pytest.raises(ValueError, match="invalid backoff"):
        impl.Backoff(**bad)


def test_the_default_sleep_and_random_source_are_real(impl):
    consumer = impl.RetryingConsumer(failing(1, TimeoutError),
                                     impl.Backoff(base=0.001, cap=0.001, max_attempts=2))
    assert run(consumer.process(impl.Message("m-1", b"{}"))) is True


def test_decode_accepts_a_plain_object():
    assert decode(b'{"entry": "e-1", "words": 12}') == {"entry": "e-1", "words": 12}
    assert Backoff(base=0.5, cap=4).ceiling(10) == 4


def test_the_demo_retries_the_flaky_message_and_dead_letters_the_other_two(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out
    assert out.count("backoff     : waiting") == 5
    assert "handled     : ['m-1', 'm-2']" in out
    assert "dead letter : m-3 after 1 attempt(s), JSONDecodeError: malformed payload" in out
    assert "dead letter : m-4 after 4 attempt(s), TimeoutError: gave up after 4 attempts" in out
    assert "original headers kept: {'traceparent': '00-trace4-01'}" in out
