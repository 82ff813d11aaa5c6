"""A choreographed saga: each service reacts to the others' events, and undoes on failure.

Nobody runs the order. The order service publishes ``OrderPlaced``; payments
charges the card and publishes ``PaymentCaptured`` or ``PaymentDeclined``;
inventory reserves stock on ``PaymentCaptured`` and publishes
``StockReserved`` or ``StockUnavailable``; payments refunds on
``StockUnavailable``; the order service confirms or cancels. The
compensation (the refund) is just another reaction to an event.

Every service remembers the event ids it has handled, so a redelivered event
changes nothing, and each reacts only to facts about one order, so orders
may interleave freely. A service marks an event handled only when its
handler succeeded, in the same all-or-nothing step as the handler's state
changes and the events it publishes: a handler that fails leaves no trace,
and the bus delivers the event again.
"""

from __future__ import annotations

import copy
import random
from collections import Counter, defaultdict, deque
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
    """An in-memory bus that may deliver late, out of order and more than once.

    Delivery is at least once: an event whose handler raised is delivered
    again later, up to ``attempts`` times in all, and is then set aside in
    ``dead_letters`` instead of being lost.
    """

    def __init__(self, attempts: int = 5) -> None:
        if type(attempts) is not int or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, not {attempts!r}")
        self.attempts = attempts
        self._handlers: dict[str, list[Callable[[Event], None]]] = defaultdict(list)
        self._pending: deque[Event] = deque()
        self._failed: Counter[str] = Counter()
        self.delivered: list[Event] = []
        self.failures: list[tuple[Event, str]] = []  # every delivery a handler failed
        self.dead_letters: list[Event] = []

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
            try:
                for handler in self._handlers[event.type]:
                    handler(event)
            except Exception as error:  # noqa: BLE001 - not acknowledged: still the bus's
                self.failures.append((event, f"{type(error).__name__}: {error}"))
                self._failed[event.event_id] += 1
                if self._failed[event.event_id] < self.attempts:
                    self._pending.append(event)  # deliver it again, later
                else:
                    self.dead_letters.append(event)  # kept for a person, never dropped


# --8<-- [start:inbox]
class Service:
    """Base for the participants: handle each event id once, all or nothing.

    A handler's state changes, the events it publishes and the mark "this event
    id is handled" commit together, the way one database transaction commits a
    service's tables, its inbox row and its outbox rows. If the handler raises,
    none of the three happened, and the bus delivers the event again.
    """

    tables: tuple[str, ...] = ()  # the attributes that hold the service's data

    def __init__(self, bus: Bus) -> None:
        self.bus, self._seen = bus, set()
        self._outbox: list[Event] = []
        self.crash_before_commit = 0  # for the demo: fail the next n handlings at the end

    def emit(self, event: Event) -> None:
        """Publish ``event`` if, and when, the running handler commits."""
        self._outbox.append(event)

    def on(self, event_type: str, handler: Callable[[Event], None]) -> None:
        """Handle every ``event_type`` event with ``handler``: once per id, all or nothing."""

        def handle_once(event: Event) -> None:
            if event.event_id in self._seen:
                return  # handled before: a duplicate changes nothing
            before = copy.deepcopy({name: getattr(self, name) for name in self.tables})
            self._outbox = []
            try:
                handler(event)
                if self.crash_before_commit:
                    self.crash_before_commit -= 1
                    raise ConnectionError(f"{type(self).__name__} crashed before commit")
            except Exception:
                vars(self).update(before)  # roll back: as if the event never arrived
                raise  # and do not mark it seen: the bus must deliver it again
            self._seen.add(event.event_id)  # commit: the mark, the changes, the events
            for published in self._outbox:
                self.bus.publish(published)

        self.bus.subscribe(event_type, handle_once)
# --8<-- [end:inbox]


# --8<-- [start:services]
class Orders(Service):
    tables = ("status",)

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
    tables = ("captured", "refunded")

    def __init__(self, bus: Bus) -> None:
        super().__init__(bus)
        self.captured: dict[str, int] = {}
        self.refunded: dict[str, int] = {}
        self.on("OrderPlaced", self._charge)
        self.on("StockUnavailable", self._refund)  # the compensation

    def _charge(self, event: Event) -> None:
        if event.data["card"] == "declined":
            self.emit(Event("PaymentDeclined", event.order_id))
            return
        self.captured[event.order_id] = event.data["amount"]
        self.emit(Event("PaymentCaptured", event.order_id, event.data))

    def _refund(self, event: Event) -> None:
        self.refunded[event.order_id] = self.captured[event.order_id]
        self.emit(Event("PaymentRefunded", event.order_id))


class Inventory(Service):
    tables = ("stock", "reserved")

    def __init__(self, bus: Bus, stock: dict[str, int]) -> None:
        super().__init__(bus)
        self.stock, self.reserved = dict(stock), {}
        self.on("PaymentCaptured", self._reserve)

    def _reserve(self, event: Event) -> None:
        item, qty = event.data["item"], event.data["qty"]
        if self.stock.get(item, 0) < qty:
            self.emit(Event("StockUnavailable", event.order_id))
            return
        self.stock[item] -= qty
        self.reserved[event.order_id] = qty
        self.emit(Event("StockReserved", event.order_id))
# --8<-- [end:services]


def shop(stock: dict[str, int]) -> tuple[Bus, Orders, Payments, Inventory]:
    """Wire the three services to one bus."""
    bus = Bus()
    return bus, Orders(bus), Payments(bus), Inventory(bus, stock)


def state(orders: Orders, payments: Payments, inventory: Inventory) -> tuple:
    """Everything the services hold: what 'the same final state' means."""
    return (orders.status, payments.captured, payments.refunded, inventory.stock,
            inventory.reserved)


ORDERS = {"o-1": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "ok"},
          "o-2": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "declined"},
          "o-3": {"item": "cohort seat", "qty": 5, "amount": 450, "card": "ok"}}


def main() -> None:
    """Three orders for two seats: in order; shuffled and duplicated; with crashing handlers."""
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

    bus, orders, payments, inventory = shop({"cohort seat": 2})
    for service in (orders, payments, inventory):
        service.crash_before_commit = 2  # each fails its first two handlings, after its changes
    for order_id, order in ORDERS.items():
        orders.place(order_id, **order)
    bus.run()
    print(f"{len(bus.failures)} handlings crashed before commit and were redelivered, "
          f"{len(bus.dead_letters)} dead letters: same final state? "
          f"{state(orders, payments, inventory) == expected}")


if __name__ == "__main__":
    main()
