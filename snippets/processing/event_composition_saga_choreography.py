"""A choreographed saga: each service reacts to the others' events, and undoes on failure.

Nobody runs the order. The order service publishes ``OrderPlaced``; payments
charges the card and publishes ``PaymentCaptured`` or ``PaymentDeclined``;
inventory reserves stock on ``PaymentCaptured`` and publishes
``StockReserved`` or ``StockUnavailable``; payments refunds on
``StockUnavailable``; the order service confirms or cancels. The
compensation (the refund) is just another reaction to an event.

Every service remembers the event ids it has handled, so a redelivered event
changes nothing, and each reacts only to facts about one order, so orders
may interleave freely.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """A fact about one order; its id is the same every time it is delivered."""

    type: str
    order_id: str
    data: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def event_id(self) -> str:
        return f"{self.type}/{self.order_id}"


class Bus:
    """An in-memory bus that may deliver late, out of order and more than once."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[Event], None]]] = defaultdict(list)
        self._pending: deque[Event] = deque()
        self.delivered: list[Event] = []

    def subscribe(self, event_type: str, handler: Callable[[Event], None]) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: Event) -> None:
        self._pending.append(event)

    def run(self, rng: random.Random | None = None, duplicates: float = 0.0) -> None:
        """Deliver until quiet; with ``rng``, in random order with random duplicates."""
        while self._pending:
            index = rng.randrange(len(self._pending)) if rng else 0
            event = self._pending[index]
            del self._pending[index]
            if rng and rng.random() < duplicates:
                self._pending.append(event)  # it will come again, later
            self.delivered.append(event)
            for handler in self._handlers[event.type]:
                handler(event)


class Service:
    """Base for the participants: skip events already handled (an inbox in memory)."""

    def __init__(self, bus: Bus) -> None:
        self.bus, self._seen = bus, set()

    def on(self, event_type: str, handler: Callable[[Event], None]) -> None:
        def once(event: Event) -> None:
            if event.event_id not in self._seen:
                self._seen.add(event.event_id)
                handler(event)

        self.bus.subscribe(event_type, once)


# --8<-- [start:services]
class Orders(Service):
    def __init__(self, bus: Bus) -> None:
        super().__init__(bus)
        self.status: dict[str, str] = {}
        self.on("StockReserved", lambda e: self.status.__setitem__(e.order_id, "confirmed"))
        self.on("PaymentDeclined", lambda e: self._cancel(e, "card declined"))
        self.on("PaymentRefunded", lambda e: self._cancel(e, "out of stock, refunded"))

    def place(self, order_id: str, **order: object) -> None:
        self.status[order_id] = "pending"
        self.bus.publish(Event("OrderPlaced", order_id, dict(order)))

    def _cancel(self, event: Event, reason: str) -> None:
        self.status[event.order_id] = f"cancelled: {reason}"


class Payments(Service):
    def __init__(self, bus: Bus) -> None:
        super().__init__(bus)
        self.captured: dict[str, int] = {}
        self.refunded: dict[str, int] = {}
        self.on("OrderPlaced", self._charge)
        self.on("StockUnavailable", self._refund)  # the compensation

    def _charge(self, event: Event) -> None:
        if event.data["card"] == "declined":
            self.bus.publish(Event("PaymentDeclined", event.order_id))
            return
        self.captured[event.order_id] = event.data["amount"]
        self.bus.publish(Event("PaymentCaptured", event.order_id, event.data))

    def _refund(self, event: Event) -> None:
        self.refunded[event.order_id] = self.captured[event.order_id]
        self.bus.publish(Event("PaymentRefunded", event.order_id))


class Inventory(Service):
    def __init__(self, bus: Bus, stock: dict[str, int]) -> None:
        super().__init__(bus)
        self.stock, self.reserved = dict(stock), {}
        self.on("PaymentCaptured", self._reserve)

    def _reserve(self, event: Event) -> None:
        item, qty = event.data["item"], event.data["qty"]
        if self.stock.get(item, 0) < qty:
            self.bus.publish(Event("StockUnavailable", event.order_id))
            return
        self.stock[item] -= qty
        self.reserved[event.order_id] = qty
        self.bus.publish(Event("StockReserved", event.order_id))
# --8<-- [end:services]


def shop(stock: dict[str, int]) -> tuple[Bus, Orders, Payments, Inventory]:
    """Wire the three services to one bus."""
    bus = Bus()
    return bus, Orders(bus), Payments(bus), Inventory(bus, stock)


def state(orders: Orders, payments: Payments, inventory: Inventory) -> tuple:
    """Everything the services hold: what 'the same final state' means."""
    return (orders.status, payments.captured, payments.refunded, inventory.stock,
            inventory.reserved)


ORDERS = {"o-1": dict(item="cohort seat", qty=1, amount=90, card="ok"),
          "o-2": dict(item="cohort seat", qty=1, amount=90, card="declined"),
          "o-3": dict(item="cohort seat", qty=5, amount=450, card="ok")}


def main() -> None:
    """Three orders for two seats, delivered in order; then shuffled and duplicated."""
    bus, orders, payments, inventory = shop({"cohort seat": 2})
    for order_id, order in ORDERS.items():
        orders.place(order_id, **order)
    bus.run()
    for order_id in ORDERS:
        trail = [e.type for e in bus.delivered if e.order_id == order_id]
        print(f"{order_id}: {' -> '.join(trail)}")
        print(f"     {orders.status[order_id]}")
    print(f"captured {payments.captured}, refunded {payments.refunded}, "
          f"seats left {inventory.stock['cohort seat']}")
    expected = state(orders, payments, inventory)

    bus, orders, payments, inventory = shop({"cohort seat": 2})
    for order_id, order in ORDERS.items():
        orders.place(order_id, **order)
    bus.run(random.Random(3), duplicates=0.5)
    again = len(bus.delivered) - len(set(bus.delivered))
    print(f"shuffled, {again} events delivered twice: same final state? "
          f"{state(orders, payments, inventory) == expected}")


if __name__ == "__main__":
    main()
