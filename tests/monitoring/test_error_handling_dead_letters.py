"""Tests of the guarded consumer: retries, dead letters, poison quarantine, crash loops."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.monitoring.error_handling_dead_letters import (
    DeadLetterQueue,
    GuardedConsumer,
    Message,
    PermanentError,
    main,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make(handler, **options):
    ticks = itertools.count(100)
    dead, quarantine = DeadLetterQueue("dlq"), DeadLetterQueue("quarantine")
    consumer = GuardedConsumer("mood-agent", "1.4.0", handler, source="coaching.entries",
                               dead=dead, quarantine=quarantine, clock=lambda: next(ticks),
                               **options)
    return consumer, dead, quarantine


def receive(consumer, message):
    return asyncio.run(asyncio.wait_for(consumer.receive(message), 5))


def test_a_transient_failure_that_recovers_is_handled_and_leaves_no_dead_letter():
    calls = []

    async def handler(message):
        calls.append(message.body)
        if len(calls) == 1:
            raise ConnectionError("503")

    consumer, dead, quarantine = make(handler)
    assert receive(consumer, Message({"message_id": "m-1"}, b"{}")) == "handled"
    assert len(calls) == 2 and len(dead) == 0 and len(quarantine) == 0


def test_a_message_that_keeps_failing_is_dead_lettered_with_reason_attempts_and_headers():
    calls = []

    async def handler(message):
        calls.append(1)
        raise TimeoutError("model endpoint did not answer")

    headers = {"message_id": "m-3", "correlation_id": "req-3", "traceparent": TRACEPARENT}
    consumer, dead, quarantine = make(handler, max_attempts=4)
    assert receive(consumer, Message(headers, b'{"entry": 3}', deliveries=2)) == "dead_lettered"
    assert len(calls) == 4 and len(quarantine) == 0
    [letter] = dead.letters
    assert (letter.id, letter.source, letter.consumer, letter.consumer_version) == (
        1, "coaching.entries", "mood-agent", "1.4.0")
    assert (letter.reason, letter.error, letter.attempts) == (
        "max_attempts", "TimeoutError: model endpoint did not answer", 4)
    assert letter.headers == headers and letter.body == b'{"entry": 3}'
    assert (letter.first_failed_at, letter.dead_at) == (100, 101)


def test_the_dead_letter_keeps_a_copy_of_the_headers_not_a_reference():
    async def handler(message):
        raise TimeoutError("x")

    headers = {"message_id": "m-1"}
    consumer, dead, _ = make(handler, max_attempts=1)
    receive(consumer, Message(headers, b""))
    headers["message_id"] = "changed later"
    assert dead.letters[0].headers == {"message_id": "m-1"}


def test_a_poison_message_is_quarantined_at_once_without_retries():
    calls = []

    async def handler(message):
        calls.append(1)
        raise PermanentError("body is not JSON")

    consumer, dead, quarantine = make(handler, max_attempts=5)
    assert receive(consumer, Message({"message_id": "m-4"}, b"not json")) == "quarantined"
    assert len(calls) == 1 and len(dead) == 0
    assert (quarantine.letters[0].reason, quarantine.letters[0].attempts) == ("poison", 1)


def test_a_message_delivered_too_often_is_quarantined_before_the_handler_runs():
    calls = []

    async def handler(message):
        calls.append(message.deliveries)

    consumer, _, quarantine = make(handler, max_deliveries=5)
    assert receive(consumer, Message({"message_id": "ok"}, b"", deliveries=5)) == "handled"
    assert receive(consumer, Message({"message_id": "m-5"}, b"", deliveries=6)) == "quarantined"
    assert calls == [5]
    letter = quarantine.letters[0]
    assert (letter.reason, letter.attempts, letter.error) == (
        "crash_loop", 0, "delivered 6 times without an outcome")


def test_a_cancelled_consumer_propagates_the_cancellation_and_dead_letters_nothing():
    async def handler(message):
        raise asyncio.CancelledError()  # what a shutdown does to an in-flight handler

    consumer, dead, quarantine = make(handler)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(consumer.receive(Message({}, b"")))
    assert len(dead) == 0 and len(quarantine) == 0


def test_an_enormous_error_message_is_truncated_in_the_dead_letter():
    async def handler(message):
        raise ValueError("x" * 100_000)

    consumer, dead, _ = make(handler, max_attempts=1)
    receive(consumer, Message({}, b""))
    assert len(dead.letters[0].error) == 500


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"max_deliveries": 0}])
def test_limits_below_one_are_refused(options):
    with pytest.raises(ValueError, match="must be at least 1"):
        make(lambda m: None, **options)


def test_the_oldest_age_is_measured_from_the_first_letter():
    queue = DeadLetterQueue("dlq")
    assert queue.oldest_age(now=50) == 0.0
    for t in (10.0, 20.0):
        queue.add(source="s", consumer="c", consumer_version="1", reason="r", error="e",
                  attempts=1, headers={}, body=b"", first_failed_at=t, dead_at=t)
    assert queue.oldest_age(now=50) == 40.0
    assert [letter.id for letter in queue.letters] == [1, 2]


outcomes = st.lists(st.sampled_from(["ok", "transient", "permanent"]), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(outcomes, st.integers(1, 8)), max_size=12), st.integers(1, 4))
def test_every_message_ends_handled_dead_or_quarantined_exactly_once(messages, max_attempts):
    script: dict[bytes, list[str]] = {}

    async def handler(message):
        step = script[message.body]
        kind = step.pop(0) if step else "ok"
        if kind == "transient":
            raise TimeoutError("t")
        if kind == "permanent":
            raise PermanentError("p")

    consumer, dead, quarantine = make(handler, max_attempts=max_attempts, max_deliveries=5)
    results = {}

    async def deliver_all():
        for n, (plan, deliveries) in enumerate(messages):
            body = str(n).encode()
            script[body] = list(plan)
            results[body] = await consumer.receive(Message({"message_id": str(n)}, body, deliveries))

    asyncio.run(asyncio.wait_for(deliver_all(), 10))
    parked = [letter.body for letter in dead.letters + quarantine.letters]
    assert len(parked) == len(set(parked))
    for body, result in results.items():
        assert (result == "handled") == (body not in parked)
    for letter in dead.letters:
        assert letter.attempts == max_attempts and letter.reason == "max_attempts"
    assert all(letter.reason in ("poison", "crash_loop") for letter in quarantine.letters)


def test_the_demo_shows_each_route(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == ["m-1: handled       after 1 calls", "m-2: handled       after 2 calls",
                       "m-3: dead_lettered after 3 calls", "m-4: quarantined   after 1 calls",
                       "m-5: quarantined   after 0 calls"]
    assert TRACEPARENT in out[5]
    assert out[-1] == "dead letters: 1, quarantined: 2, oldest dead letter age: 57 s"
