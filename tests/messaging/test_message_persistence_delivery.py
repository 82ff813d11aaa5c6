"""Delivery guarantees: what one crash does to each strategy, wherever it happens."""

from __future__ import annotations

import pytest

from snippets.messaging.message_persistence_delivery import (
    Crash,
    Redelivering,
    at_least_once,
    at_most_once,
    consume,
    exactly_once_effect,
    main,
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
    from snippets.messaging.message_persistence_delivery import Message, open_tracker

    db = open_tracker()
    db.execute("CREATE TRIGGER full BEFORE INSERT ON applied BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    broker = Redelivering([("m1", "ana")])
    with pytest.raises(Exception, match="disk full"):
        exactly_once_effect(db, broker, Message("m1", "ana", 1), lambda: None)
    assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert broker.receive() is not None  # not acked: it will come again


def test_the_crash_stand_in_is_an_exception_with_a_reason():
    assert "died" in str(Crash("consumer died while handling m2"))
