"""The interview's order flow: per-order order, redelivery without double charges, compensation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.interview_order_flow import (
    Event,
    Inventory,
    OrderLog,
    Payment,
    email,
    main,
)


def test_the_demo_charges_once_and_gives_the_stock_back_after_a_decline(capsys):
    main()
    assert capsys.readouterr().out == (
        "-- o-1 placed\n"
        "inventory: o-1 reserved 2 x notebook, 3 left\n"
        "payment  : o-1 charged 24.00\n"
        "email    : o-1 confirmation sent\n"
        "-- payment crashes before committing its offset, and restarts\n"
        "payment  : o-1 delivered again, already charged: skipped\n"
        "-- o-2 placed with a card that will be declined\n"
        "inventory: o-2 reserved 1 x notebook, 2 left\n"
        "payment  : o-2 card declined\n"
        "inventory: o-2 released 1 x notebook, 3 left\n"
        "email    : o-2 'please update your card' sent\n"
        "-- charges [('o-1', 24.0)], notebooks in stock 3\n")


def test_every_event_of_one_order_lands_in_the_same_partition():
    log = OrderLog(partitions=4)
    for n in range(40):
        log.publish("OrderPlaced" if n % 2 else "OrderCancelled", f"o-{n % 7}")
    for partition in log.partitions:
        for event in partition:
            homes = [p for p, events in enumerate(log.partitions)
                     if any(e.order_id == event.order_id for e in events)]
            assert len(homes) == 1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["o-1", "o-2", "o-3", "o-4"]), st.booleans()),
                min_size=1, max_size=30))
def test_each_group_sees_the_events_of_an_order_in_publish_order(program):
    log = OrderLog(partitions=2)
    seen: dict[str, list[Event]] = {"a": [], "b": []}
    log.subscribe("a", seen["a"].append)
    published = []
    for order_id, run_now in program:
        published.append(log.publish("OrderNoted", order_id))
        if run_now:
            log.run()
        if len(published) == min(5, len(program)):
            log.subscribe("b", seen["b"].append)  # a late group reads the history too
    log.run()
    for group in seen.values():
        assert sorted(e.id for e in group) == sorted(e.id for e in published)
        for order_id in {e.order_id for e in published}:
            assert [e for e in group if e.order_id == order_id] == [
                e for e in published if e.order_id == order_id]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["o-1", "o-2", "o-3"]), st.integers(0, 3)),
                max_size=12))
def test_redeliveries_after_crashes_never_charge_an_order_twice(rewinds):
    log = OrderLog()
    payment = Payment(log, declined=set())
    inventory = Inventory(log, {"notebook": 100})
    log.subscribe("payment", payment)
    log.subscribe("inventory", inventory)
    for n in (1, 2, 3):
        log.publish("OrderPlaced", f"o-{n}", item="notebook", qty=n, amount=10.0 * n, card="c")
    log.run()
    for order_id, events in rewinds:
        log.rewind("payment", order_id, events)
        log.rewind("inventory", order_id, events)
        log.run()
    assert sorted(payment.charges) == [("o-1", 10.0), ("o-2", 20.0), ("o-3", 30.0)]
    assert inventory.stock == {"notebook": 94}


def test_a_declined_card_releases_exactly_the_reserved_stock_even_if_redelivered(capsys):
    log = OrderLog()
    inventory = Inventory(log, {"notebook": 5, "pen": 2})
    payment = Payment(log, declined={"card-9"})
    log.subscribe("inventory", inventory)
    log.subscribe("payment", payment)
    log.subscribe("email", email)
    log.publish("OrderPlaced", "o-7", item="pen", qty=2, amount=4.0, card="card-9")
    log.run()
    log.rewind("inventory", "o-7", events=2)  # re-reads OrderPlaced and PaymentFailed
    log.run()
    assert inventory.stock == {"notebook": 5, "pen": 2}
    assert inventory.reserved == {} and payment.charges == []
    assert capsys.readouterr().out.count("released 2 x pen") == 1


@pytest.mark.parametrize("order_id", ["", None, 42])
def test_an_event_without_an_order_id_is_refused_and_the_log_is_unchanged(order_id):
    log = OrderLog()
    log.publish("OrderPlaced", "o-1")
    with pytest.raises(ValueError, match=f"OrderPlaced: order_id must be a non-empty str, "
                                         f"not {order_id!r}"):
        log.publish("OrderPlaced", order_id)
    assert sum(len(p) for p in log.partitions) == 1


def test_rewinding_an_unknown_group_names_it():
    with pytest.raises(KeyError, match="no consumer group 'billing'"):
        OrderLog().rewind("billing", "o-1")
