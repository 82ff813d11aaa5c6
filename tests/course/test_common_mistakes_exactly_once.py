"""Exactly-once belief: the log's outputs stay exact while the card is charged per delivery."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_exactly_once import (
    CardGateway,
    OrderPlaced,
    TransactionalLog,
    keyed_payment,
    main,
    trusting_payment,
)


def test_the_demo_charges_o1_twice_only_without_an_idempotency_key(capsys):
    main()
    assert capsys.readouterr().out == (
        "trusting_payment: log outputs 2 PaymentCaptured (exactly once), card charged"
        " [('o-1', 2400), ('o-1', 2400), ('o-2', 1200)]\n"
        "keyed_payment   : log outputs 2 PaymentCaptured (exactly once), card charged"
        " [('o-1', 2400), ('o-2', 1200)]\n")


orders = st.lists(st.integers(1, 50_000), min_size=1, max_size=10).map(
    lambda amounts: [OrderPlaced(f"ev-{n}", f"o-{n}", cents) for n, cents in enumerate(amounts)])
crash_counts = st.dictionaries(st.integers(0, 9).map(lambda n: f"ev-{n}"), st.integers(1, 3))


def run(make, events, crashes):
    gateway, log = CardGateway(), TransactionalLog(events)
    log.process(make(gateway), crashes)
    return gateway, log


@settings(max_examples=150, deadline=None)
@given(orders, crash_counts)
def test_broken_every_crash_before_the_commit_charges_the_card_once_more(events, crashes):
    gateway, log = run(trusting_payment, events, crashes)
    assert [o[1] for o in log.outputs] == [e.order_id for e in events]  # the log is exact
    for event in events:
        times = sum(1 for order, _ in gateway.charges if order == event.order_id)
        assert times == 1 + crashes.get(event.id, 0)


@settings(max_examples=150, deadline=None)
@given(orders, crash_counts)
def test_fixed_each_order_is_charged_once_whatever_crashes(events, crashes):
    gateway, log = run(keyed_payment, events, crashes)
    assert gateway.charges == [(e.order_id, e.cents) for e in events]
    charge_ids = [charge for _, _, charge in log.outputs]
    assert charge_ids == [f"ch-{n}" for n in range(1, len(events) + 1)]


def test_reusing_a_key_for_a_different_charge_is_refused_and_charges_nothing():
    gateway = CardGateway()
    assert gateway.charge("o-1", 2400, idempotency_key="payment-ev-1") == "ch-1"
    with pytest.raises(ValueError, match=r"idempotency key 'payment-ev-1' was used for o-1 "
                                         r"\(2400\), not o-2 \(999\)"):
        gateway.charge("o-2", 999, idempotency_key="payment-ev-1")
    assert gateway.charges == [("o-1", 2400)]


@pytest.mark.parametrize("cents", [0, -5])
def test_a_non_positive_amount_is_refused_by_name(cents):
    gateway = CardGateway()
    with pytest.raises(ValueError, match=f"order o-1: amount must be positive, not {cents}"):
        gateway.charge("o-1", cents, idempotency_key="k")
    assert gateway.charges == []


def test_a_failing_handler_leaves_the_offset_where_it_was():
    log = TransactionalLog([OrderPlaced("ev-1", "o-1", 0)])
    with pytest.raises(ValueError):
        log.process(keyed_payment(CardGateway()), {})
    assert log.committed == 0 and log.outputs == []
