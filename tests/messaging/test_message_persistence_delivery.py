"""Delivery guarantees: what one crash does to each strategy, wherever it happens."""

from __future__ import annotations

import pytest

from snippets.messaging.message_persistence_delivery import (
    Crash,
    Message,
    Redelivering,
    at_least_once,
    at_most_once,
    consume,
    exactly_once_effect,
    main,
    open_tracker,
)


def test_the_demo_shows_a_loss_a_double_count_and_a_correct_count(capsys):
    main()
    assert capsys.readouterr().out == (
        "at_most_once       : 3 deliveries, counted 2 of 3 entries\n"
        "at_least_once      : 4 deliveries, counted 4 of 3 entries\n"
        "exactly_once_effect: 4 deliveries, counted 3 of 3 entries\n")


@pytest.mark.parametrize("crash_on", ["m1", "m2", "m3"])
@pytest.mark.parametrize(("strategy", "counted", "deliveries"), [
    (at_most_once, 2, 3),         # the crashed message is lost
    (at_least_once, 4, 4),        # the crashed message is applied twice
    (exactly_once_effect, 3, 4),  # delivered twice, applied once
])
def test_one_crash_anywhere_has_the_same_consequence(strategy, counted, deliveries, crash_on):
    assert consume(strategy, crash_on=crash_on) == (counted, deliveries)


@pytest.mark.parametrize("strategy", [at_most_once, at_least_once, exactly_once_effect])
def test_without_a_crash_every_strategy_counts_right(strategy):
    assert consume(strategy, crash_on="never") == (3, 3)


def test_a_failure_inside_the_idempotent_transaction_applies_nothing():
    db = open_tracker()
    db.execute("CREATE TRIGGER full BEFORE INSERT ON applied BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    broker = Redelivering([("m1", "ana")])
    with pytest.raises(Exception, match="disk full"):
        exactly_once_effect(db, broker, Message("m1", "ana", 1), lambda: None)
    assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert broker.receive() is not None  # not acked: it will come again


def test_the_crash_stand_in_is_an_exception_with_a_reason():
    assert "died" in str(Crash("consumer died while handling m2"))


def test_an_unacknowledged_message_comes_back_with_its_body_and_the_next_attempt_number():
    broker = Redelivering([("m1", "ana"), ("m2", "ben")])
    assert broker.receive() == Message("m1", "ana", 1)
    second = broker.receive()  # not acknowledged: the same message again
    assert second == Message("m1", "ana", 2)
    broker.ack(second)
    assert broker.receive() == Message("m2", "ben", 1)
    assert broker.deliveries == 3


def test_a_repeated_acknowledgement_drops_nothing_else():
    broker = Redelivering([("m1", "ana"), ("m2", "ana")])
    first = broker.receive()
    broker.ack(first)
    broker.ack(first)  # the consumer retries an ack it is not sure arrived
    second = broker.receive()
    assert second == Message("m2", "ana", 1)
    broker.ack(second)
    broker.ack(second)  # and once more, on an empty broker
    assert broker.receive() is None


def deliver_all(strategy, db, broker, crash_on: str = "") -> None:
    """Receive until the broker is empty; a crash loses the transaction it interrupts, if any."""
    crashed: list[str] = []

    def crash_for(message: Message):
        def crash() -> None:
            if message.id == crash_on and not crashed:
                crashed.append(message.id)
                db.rollback()  # a dying process takes its uncommitted work with it
                raise Crash(f"consumer died while handling {message.id}")
        return crash

    while (message := broker.receive()) is not None:
        try:
            strategy(db, broker, message, crash_for(message))
        except Crash:
            continue


@pytest.mark.parametrize("strategy", [at_most_once, at_least_once, exactly_once_effect])
def test_each_strategy_counts_the_sessions_of_each_user(strategy):
    db = open_tracker()
    deliver_all(strategy, db, Redelivering([("m1", "ana"), ("m2", "ben"), ("m3", "ana")]))
    assert db.execute("SELECT user, count FROM sessions ORDER BY user").fetchall() == [
        ("ana", 2), ("ben", 1)]


@pytest.mark.parametrize(("strategy", "counted"), [
    (at_most_once, 1),         # m1 was acknowledged, then lost
    (at_least_once, 3),        # m1's first count was stored before the crash: counted twice
    (exactly_once_effect, 2),  # m1's count and its id were stored together: applied once
])
def test_a_crash_that_loses_uncommitted_work_finds_every_count_already_stored(strategy, counted):
    db = open_tracker()
    deliver_all(strategy, db, Redelivering([("m1", "ana"), ("m2", "ana")]), crash_on="m1")
    db.rollback()  # the process ends: anything still uncommitted would be gone
    assert db.execute("SELECT count FROM sessions WHERE user = 'ana'").fetchone() == (counted,)
