"""Tests of the choreographed saga: outcomes, duplicates, any delivery order, invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_composition_saga_choreography import (
    ORDERS,
    Bus,
    Event,
    Inventory,
    Orders,
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
    _, *services = play(order_list, stock, rng, duplicates)
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
    assert out[:6] == ["o-1: OrderPlaced -> PaymentCaptured -> StockReserved",
                       "     confirmed",
                       "o-2: OrderPlaced -> PaymentDeclined",
                       "     cancelled: card declined",
                       "o-3: OrderPlaced -> PaymentCaptured -> StockUnavailable -> PaymentRefunded",
                       "     cancelled: out of stock, refunded"]
    assert len(out) == 9
    assert out[-3] == "captured {'o-1': 90, 'o-3': 450}, refunded {'o-3': 450}, seats left 1"
    assert out[-2] == "shuffled, 7 events delivered twice: same final state? True"
    assert out[-1] == ("6 handlings crashed before commit and were redelivered, 0 dead letters: "
                       "same final state? True")


# --- A failed handler must not mark its event as seen (issue 20, defect 3) -----------------------

class Broker:
    """A test double for the transport: it delivers exactly when the test says so."""

    def __init__(self) -> None:
        self.handlers: dict[str, list] = {}
        self.published: list[Event] = []

    def subscribe(self, event_type: str, handler) -> None:
        self.handlers.setdefault(event_type, []).append(handler)

    def publish(self, event: Event) -> None:
        self.published.append(event)

    def deliver(self, event: Event) -> None:
        for handler in self.handlers[event.type]:
            handler(event)


class FailsOnce(Inventory):
    """Inventory whose first reservation raises, before or after it changed anything."""

    def __init__(self, bus, stock: dict[str, int], after_effect: bool) -> None:
        super().__init__(bus, stock)
        self.after_effect, self.failures = after_effect, 0

    def _reserve(self, event: Event) -> None:
        if self.after_effect:
            super()._reserve(event)
        if not self.failures:
            self.failures += 1
            raise ConnectionError("inventory: database connection lost")
        if not self.after_effect:
            super()._reserve(event)


CAPTURED = Event("PaymentCaptured", "o-1", {"item": "seat", "qty": 1, "amount": 90, "card": "ok"})


@pytest.mark.parametrize("after_effect", [False, True], ids=["before", "after"])
def test_an_event_whose_handler_failed_is_handled_on_redelivery_exactly_once(after_effect):
    broker = Broker()
    inventory = FailsOnce(broker, {"seat": 2}, after_effect)
    with pytest.raises(ConnectionError, match="database connection lost"):
        broker.deliver(CAPTURED)
    assert (inventory.stock, inventory.reserved, broker.published) == ({"seat": 2}, {}, [])
    broker.deliver(CAPTURED)  # the broker redelivers what was not acknowledged
    assert inventory.stock == {"seat": 1} and inventory.reserved == {"o-1": 1}
    assert broker.published == [Event("StockReserved", "o-1")]
    broker.deliver(CAPTURED)  # a true duplicate, after success: ignored
    assert inventory.stock == {"seat": 1} and inventory.reserved == {"o-1": 1}
    assert broker.published == [Event("StockReserved", "o-1")]


def test_the_bus_redelivers_an_event_whose_handler_failed_and_the_order_completes():
    bus = Bus()
    orders_service, payments = Orders(bus), Payments(bus)
    inventory = FailsOnce(bus, {"cohort seat": 2}, after_effect=True)
    orders_service.place("o-1", **ORDERS["o-1"])
    bus.run()
    assert [e.type for e in bus.delivered] == [
        "OrderPlaced", "PaymentCaptured", "PaymentCaptured", "StockReserved"]
    assert bus.failures == [(Event("PaymentCaptured", "o-1"),
                             "ConnectionError: inventory: database connection lost")]
    assert orders_service.status == {"o-1": "confirmed"} and bus.dead_letters == []
    assert inventory.stock == {"cohort seat": 1} and inventory.reserved == {"o-1": 1}
    assert payments.captured == {"o-1": 90} and payments.refunded == {}


def test_an_event_that_keeps_failing_becomes_a_dead_letter_and_changes_nothing():
    bus = Bus(attempts=2)
    orders_service, _ = Orders(bus), Payments(bus)
    inventory = Inventory(bus, {"cohort seat": 2})
    inventory.crash_before_commit = 2  # both deliveries of the first PaymentCaptured fail
    orders_service.place("o-1", **ORDERS["o-1"])
    bus.run()
    captured = Event("PaymentCaptured", "o-1")
    assert bus.failures == [(captured, "ConnectionError: Inventory crashed before commit")] * 2
    assert bus.dead_letters == [captured]
    assert inventory.stock == {"cohort seat": 2} and inventory.reserved == {}
    assert orders_service.status == {"o-1": "pending"}  # stuck in view, not lost
    orders_service.place("o-2", **ORDERS["o-1"])  # the next order is not held up
    bus.run()
    assert orders_service.status == {"o-1": "pending", "o-2": "confirmed"}
    assert inventory.stock == {"cohort seat": 1} and len(bus.failures) == 2


@pytest.mark.parametrize("attempts", [0, -1, "3", True, 2.0])
def test_a_bus_refuses_a_number_of_attempts_that_is_not_a_positive_int(attempts):
    with pytest.raises(ValueError, match=f"attempts must be an int >= 1, not {attempts!r}"):
        Bus(attempts=attempts)


def test_a_failed_handler_publishes_nothing_and_rolls_back_every_table():
    bus = Bus()
    payments = Payments(bus)
    payments.crash_before_commit = 1
    handler = bus._handlers["OrderPlaced"][0]
    with pytest.raises(ConnectionError, match="^Payments crashed before commit$"):
        handler(Event("OrderPlaced", "o-1", {"card": "ok", "amount": 90}))
    assert (payments.captured, payments.refunded, list(bus._pending)) == ({}, {}, [])
    handler(Event("OrderPlaced", "o-1", {"card": "ok", "amount": 90}))
    assert payments.captured == {"o-1": 90} and payments.crash_before_commit == 0
    assert list(bus._pending) == [Event("PaymentCaptured", "o-1")]


@settings(max_examples=200, deadline=None)
@given(orders, st.randoms(use_true_random=False), st.floats(0, 0.9),
       st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)))
def test_handlers_crashing_before_commit_in_any_order_give_the_fault_free_state(
        order_list, rng, duplicates, crashes):
    stock = {f"item-{item}-{n}": 3 for n, (_, _, item) in enumerate(order_list)}
    expected = state(*play(order_list, stock)[1:])
    bus, orders_service, payments, inventory = shop(stock)
    for service, n in zip((orders_service, payments, inventory), crashes):
        service.crash_before_commit = n
    for n, (qty, card, item) in enumerate(order_list):
        orders_service.place(f"o-{n}", item=f"item-{item}-{n}", qty=qty, amount=10 * qty,
                             card=card)
    bus.run(rng, duplicates)
    assert state(orders_service, payments, inventory) == expected
    assert bus.dead_letters == []


def test_one_attempt_means_a_failed_event_is_a_dead_letter_at_once_and_five_is_the_default():
    assert Bus().attempts == 5
    bus = Bus(attempts=1)
    inventory = Inventory(bus, {"seat": 1})
    inventory.crash_before_commit = 1
    bus.publish(CAPTURED)
    bus.run()
    assert bus.delivered == bus.dead_letters == [CAPTURED] and len(bus.failures) == 1
    assert inventory.stock == {"seat": 1}


def test_the_last_seats_can_be_reserved_and_an_unknown_item_is_out_of_stock():
    bus, orders_service, payments, inventory = shop({"seat": 2})
    orders_service.place("o-1", item="seat", qty=2, amount=20, card="ok")
    orders_service.place("o-2", item="sofa", qty=1, amount=10, card="ok")
    bus.run()
    assert orders_service.status == {"o-1": "confirmed", "o-2": "cancelled: out of stock, refunded"}
    assert inventory.stock == {"seat": 0} and payments.refunded == {"o-2": 10}
    assert bus.failures == [] and Payments(Bus()).crash_before_commit == 0


def test_without_a_duplicate_rate_a_shuffled_run_delivers_each_event_once():
    bus, *_ = play([(1, "ok", 0), (1, "declined", 1)], {"item-0-0": 1, "item-1-1": 1},
                   random.Random(7))
    assert len(bus.delivered) == len(set(bus.delivered)) == 5
