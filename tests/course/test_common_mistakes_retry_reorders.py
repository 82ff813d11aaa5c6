"""Retries and order: requeueing lets later messages overtake; retry in place plus parking does not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_retry_reorders import (
    KeyOrderedConsumer,
    Message,
    flaky,
    main,
    requeue_at_the_back,
)


def test_the_demo_applies_anas_entries_out_of_order_only_when_requeueing(capsys):
    main()
    assert capsys.readouterr().out == (
        "requeue at the back: applied ['ana#2', 'ben#2', 'caro#1', 'ana#1'], dead ['ben#1']\n"
        "retry in place     : applied ['ana#1', 'ana#2', 'caro#1'], dead ['ben#1'],"
        " parked ['ben#2']\n"
        "after the redrive  : applied ['ana#1', 'ana#2', 'caro#1', 'ben#1', 'ben#2']\n")


@st.composite
def scenarios(draw):
    keys = draw(st.lists(st.sampled_from(["ana", "ben", "caro"]), min_size=1, max_size=15))
    seqs: dict[str, int] = {}
    queue = []
    for key in keys:
        seqs[key] = seqs.get(key, 0) + 1
        queue.append(Message(key, seqs[key]))
    failures = {m: draw(st.integers(0, 4)) for m in queue}
    return queue, failures


def in_key_order(applied):
    return all(a.seq < b.seq for i, a in enumerate(applied) for b in applied[i + 1:]
               if a.key == b.key)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_fixed_each_key_is_applied_in_order_and_after_a_redrive_completely(scenario):
    queue, failures = scenario
    applied: list[Message] = []
    consumer = KeyOrderedConsumer(flaky(dict(failures), applied), max_attempts=3)
    consumer.run(queue)
    assert in_key_order(applied)
    for key, dead in consumer.dead.items():  # what is held is exactly the rest of the key
        held = [dead, *consumer.parked[key]]
        assert held == [m for m in queue if m.key == key and m.seq >= dead.seq]
    handler_fixed = flaky({}, applied)
    consumer.handler = handler_fixed
    for key in list(consumer.dead):
        consumer.redrive(key)
    assert in_key_order(applied)
    assert sorted(applied, key=lambda m: (m.key, m.seq)) == sorted(
        queue, key=lambda m: (m.key, m.seq))


def test_broken_a_retried_message_is_overtaken_by_the_next_one_of_its_key():
    queue = [Message("ana", 1), Message("ana", 2)]
    applied: list[Message] = []
    dead = requeue_at_the_back(queue, flaky({Message("ana", 1): 1}, applied))
    assert dead == [] and applied == [Message("ana", 2), Message("ana", 1)]


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_broken_any_later_message_that_succeeds_at_once_overtakes_a_retried_one(scenario):
    queue, failures = scenario
    applied: list[Message] = []
    requeue_at_the_back(queue, flaky(dict(failures), applied), max_attempts=3)
    for retried in (m for m in queue if failures[m] > 0):
        for later in queue:
            if later.key == retried.key and later.seq > retried.seq and failures[later] == 0:
                assert retried not in applied or applied.index(later) < applied.index(retried)


def test_a_dead_letter_that_fails_again_on_redrive_stays_dead_and_keeps_its_key_parked():
    applied: list[Message] = []
    consumer = KeyOrderedConsumer(flaky({Message("ben", 1): 9}, applied), max_attempts=2)
    consumer.run([Message("ben", 1), Message("ben", 2)])
    consumer.redrive("ben")  # still broken: 2 more attempts fail
    assert consumer.dead == {"ben": Message("ben", 1)}
    assert consumer.parked == {"ben": [Message("ben", 2)]} and applied == []


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="max_attempts must be >= 1, not 0"):
        KeyOrderedConsumer(lambda m: None, max_attempts=0)
    with pytest.raises(KeyError, match="no dead letter for key 'ana'"):
        KeyOrderedConsumer(lambda m: None).redrive("ana")


class Interrupted(BaseException):
    """The process is stopped mid-redrive (Ctrl-C, a cancelled task): not a handler failure."""


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_redrive_interrupted_at_any_message_loses_none_of_the_key(stop_at):
    applied: list[Message] = []
    consumer = KeyOrderedConsumer(flaky({Message("ben", 1): 9}, applied), max_attempts=1)
    consumer.run([Message("ben", 1), Message("ben", 2), Message("ben", 3)])
    calls = 0

    def stops_at_the_nth_call(message: Message) -> None:
        nonlocal calls
        calls += 1
        if calls == stop_at:
            raise Interrupted(f"stopped while handling {message.key}#{message.seq}")
        applied.append(message)

    consumer.handler = stops_at_the_nth_call
    with pytest.raises(Interrupted):
        consumer.redrive("ben")
    waiting = [consumer.dead["ben"], *consumer.parked["ben"]]
    assert applied == [Message("ben", n) for n in range(1, stop_at)]
    assert waiting == [Message("ben", n) for n in range(stop_at, 4)]  # still held, in order
    consumer.handler = flaky({}, applied)
    consumer.redrive("ben")
    assert applied == [Message("ben", 1), Message("ben", 2), Message("ben", 3)]
    assert consumer.dead == {} and consumer.parked == {}


def test_a_message_that_fails_mid_redrive_becomes_the_keys_dead_letter():
    applied: list[Message] = []
    consumer = KeyOrderedConsumer(flaky({Message("ben", 1): 1, Message("ben", 2): 2}, applied),
                                  max_attempts=1)
    consumer.run([Message("ben", 1), Message("ben", 2), Message("ben", 3), Message("ana", 1)])
    assert consumer.dead == {"ben": Message("ben", 1)}
    consumer.redrive("ben")  # ben#1 now succeeds, ben#2 fails its one attempt
    assert applied == [Message("ana", 1), Message("ben", 1)]
    assert consumer.dead == {"ben": Message("ben", 2)}
    assert consumer.parked == {"ben": [Message("ben", 3)]}
    consumer.redrive("ben")  # and fails again: nothing moves
    assert consumer.dead == {"ben": Message("ben", 2)} and applied[-1] == Message("ben", 1)
    consumer.redrive("ben")
    assert applied == [Message("ana", 1), Message("ben", 1), Message("ben", 2), Message("ben", 3)]
    assert consumer.dead == {} and consumer.parked == {}
