"""Tests of the choreographed saga: outcomes, duplicates, any delivery order, invariants."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_composition_saga_choreography import (
    ORDERS,
    Bus,
    Event,
    Payments,
    main,
    shop,
    state,
)

orders = st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["ok", "declined"]),
                            st.integers(0, 2)), min_size=1, max_size=8)


def play(order_list, stock: dict[str, int], rng=None, duplicates=0.0, shared_item=False):
    bus, orders_service, payments, inventory = shop(stock)
    for n, (qty, card, item) in enumerate(order_list):
        orders_service.place(f"o-{n}", item="seat" if shared_item else f"item-{item}-{n}",
                             qty=qty, amount=10 * qty, card=card)
    bus.run(rng, duplicates)
    return bus, orders_service, payments, inventory


def test_the_three_outcomes_follow_the_classic_event_trails():
    bus, orders_service, payments, inventory = shop({"cohort seat": 2})
    for order_id, order in ORDERS.items():
        orders_service.place(order_id, **order)
    bus.run()
    trails = {o: [e.type for e in bus.delivered if e.order_id == o] for o in ORDERS}
    assert trails == {
        "o-1": ["OrderPlaced", "PaymentCaptured", "StockReserved"],
        "o-2": ["OrderPlaced", "PaymentDeclined"],
        "o-3": ["OrderPlaced", "PaymentCaptured", "StockUnavailable", "PaymentRefunded"],
    }
    assert orders_service.status == {"o-1": "confirmed", "o-2": "cancelled: card declined",
                                      "o-3": "cancelled: out of stock, refunded"}
    assert payments.refunded == {"o-3": 450} and inventory.stock == {"cohort seat": 1}


@settings(max_examples=200, deadline=None)
@given(orders, st.randoms(use_true_random=False), st.floats(0, 0.9))
def test_without_competition_for_stock_any_order_and_duplicates_give_the_fault_free_state(
        order_list, rng, duplicates):
    stock = {f"item-{item}-{n}": 3 for n, (_, _, item) in enumerate(order_list)}
    expected = state(*play(order_list, stock)[1:])
    bus, *services = play(order_list, stock, rng, duplicates)
    assert state(*services) == expected


@settings(max_examples=200, deadline=None)
@given(orders, st.integers(0, 8), st.randoms(use_true_random=False), st.floats(0, 0.9))
def test_competing_orders_in_any_delivery_order_keep_stock_and_money_consistent(
        order_list, seats, rng, duplicates):
    _, orders_service, payments, inventory = play(order_list, {"seat": seats}, rng, duplicates,
                                                  shared_item=True)
    confirmed = {o for o, s in orders_service.status.items() if s == "confirmed"}
    statuses = orders_service.status.values()
    assert all(s == "confirmed" or s.startswith("cancelled") for s in statuses)
    assert set(inventory.reserved) == confirmed  # stock is held exactly for confirmed orders
    assert seats - inventory.stock["seat"] == sum(inventory.reserved.values()) >= 0
    kept = {o: a for o, a in payments.captured.items() if o not in payments.refunded}
    assert set(kept) == confirmed  # money is kept exactly for confirmed orders


def test_a_handler_that_skips_the_dedup_would_charge_twice():
    bus = Bus()
    charged = []
    bus.subscribe("OrderPlaced", lambda e: charged.append(e.order_id))  # no dedup
    payments = Payments(bus)  # dedups by event id
    event = Event("OrderPlaced", "o-1", {"card": "ok", "amount": 90})
    bus.publish(event)
    bus.publish(event)
    bus.run()
    assert charged == ["o-1", "o-1"] and payments.captured == {"o-1": 90}


def test_a_seeded_shuffle_is_reproducible():
    runs = [play([(1, "ok", 0), (2, "declined", 1)], {"item-0-0": 1, "item-1-1": 1},
                 random.Random(5), 0.5)[0].delivered for _ in range(2)]
    assert runs[0] == runs[1]


def test_the_demo_prints_the_trails_and_the_same_state_after_shuffling(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "o-1: OrderPlaced -> PaymentCaptured -> StockReserved"
    assert out[-2] == "captured {'o-1': 90, 'o-3': 450}, refunded {'o-3': 450}, seats left 1"
    assert out[-1].startswith("shuffled, ") and out[-1].endswith("same final state? True")
