"""The interview answer as running code: an order flow built from events.

An ``OrderPlaced`` event goes to a partitioned log, keyed by order id. Three
services read it in their own consumer groups and react independently:
inventory reserves stock, payment charges the card, email confirms. Each of
the answer's claims is visible when it runs:

* the shop publishes once and knows none of its consumers;
* every event of one order lands in one partition, so each service sees an
  order's events in the order they were published;
* a consumer that crashes before committing its offset reads the event
  again, and an idempotent handler turns the second delivery into a no-op;
* a declined card publishes ``PaymentFailed`` and inventory compensates by
  releasing the stock (a choreographed saga).

Everything is in memory and deterministic. The ``seen`` sets stand for the
table of handled event ids that a real service writes in the same
transaction as its effect; the Messaging chapter runs the same log on Kafka
and the other engines.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """A fact about one order."""

    id: str
    type: str
    order_id: str
    data: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Event], None]


# --8<-- [start:log]
class OrderLog:
    """A partitioned log: key -> partition, one committed offset per group and partition."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions: list[list[Event]] = [[] for _ in range(partitions)]
        self.groups: dict[str, tuple[Handler, list[int]]] = {}
        self._ids = 0

    def publish(self, type_: str, order_id: str, **data: Any) -> Event:
        """Append an event to its order's partition (a stable hash of the order id)."""
        if not isinstance(order_id, str) or not order_id:
            raise ValueError(f"{type_}: order_id must be a non-empty str, not {order_id!r}")
        self._ids += 1
        event = Event(f"ev-{self._ids}", type_, order_id, data)
        self.partitions[zlib.crc32(order_id.encode()) % len(self.partitions)].append(event)
        return event

    def subscribe(self, group: str, handler: Handler) -> None:
        """Add a consumer group that starts at the beginning of every partition."""
        self.groups[group] = (handler, [0] * len(self.partitions))

    def rewind(self, group: str, order_id: str, events: int = 1) -> None:
        """A crash before the commit: the group re-reads the last ``events`` events."""
        if group not in self.groups:
            raise KeyError(f"no consumer group {group!r}")
        partition = zlib.crc32(order_id.encode()) % len(self.partitions)
        offsets = self.groups[group][1]
        offsets[partition] = max(0, offsets[partition] - events)

    def run(self) -> None:
        """Deliver until every group has read every partition; handle, then commit."""
        moved = True
        while moved:
            moved = False
            for handler, offsets in self.groups.values():
                for p, events in enumerate(self.partitions):
                    if offsets[p] < len(events):
                        handler(events[offsets[p]])
                        offsets[p] += 1
                        moved = True
# --8<-- [end:log]


# --8<-- [start:services]
class Inventory:
    """Reserves stock for an order; releases it when the payment fails."""

    def __init__(self, log: OrderLog, stock: dict[str, int]) -> None:
        self.log, self.stock, self.reserved, self.seen = log, stock, {}, set()

    def __call__(self, event: Event) -> None:
        if event.id in self.seen:
            return  # a redelivery: already handled
        self.seen.add(event.id)
        if event.type == "OrderPlaced":
            item, qty = event.data["item"], event.data["qty"]
            self.stock[item] -= qty
            self.reserved[event.order_id] = (item, qty)
            print(f"inventory: {event.order_id} reserved {qty} x {item}, {self.stock[item]} left")
        elif event.type == "PaymentFailed" and event.order_id in self.reserved:
            item, qty = self.reserved.pop(event.order_id)
            self.stock[item] += qty  # compensate: undo the reservation
            print(f"inventory: {event.order_id} released {qty} x {item}, {self.stock[item]} left")


class Payment:
    """Charges the card once per ``OrderPlaced``; publishes success or failure."""

    def __init__(self, log: OrderLog, declined: set[str]) -> None:
        self.log, self.declined, self.charges, self.seen = log, declined, [], set()

    def __call__(self, event: Event) -> None:
        if event.type != "OrderPlaced":
            return
        if event.id in self.seen:
            print(f"payment  : {event.order_id} delivered again, already charged: skipped")
            return
        self.seen.add(event.id)
        if event.data["card"] in self.declined:
            print(f"payment  : {event.order_id} card declined")
            self.log.publish("PaymentFailed", event.order_id, reason="card declined")
            return
        self.charges.append((event.order_id, event.data["amount"]))
        print(f"payment  : {event.order_id} charged {event.data['amount']:.2f}")
        self.log.publish("PaymentSucceeded", event.order_id)


def email(event: Event) -> None:
    """Tells the customer how the payment went."""
    if event.type == "PaymentSucceeded":
        print(f"email    : {event.order_id} confirmation sent")
    elif event.type == "PaymentFailed":
        print(f"email    : {event.order_id} 'please update your card' sent")
# --8<-- [end:services]


def main() -> None:
    """Two orders, one redelivery after a crash, one declined card."""
    log = OrderLog()
    inventory = Inventory(log, {"notebook": 5})
    payment = Payment(log, declined={"card-9"})
    for group, handler in (("inventory", inventory), ("payment", payment), ("email", email)):
        log.subscribe(group, handler)

    print("-- o-1 placed")
    log.publish("OrderPlaced", "o-1", item="notebook", qty=2, amount=24.0, card="card-1")
    log.run()
    print("-- payment crashes before committing its offset, and restarts")
    log.rewind("payment", "o-1", events=2)
    log.run()
    print("-- o-2 placed with a card that will be declined")
    log.publish("OrderPlaced", "o-2", item="notebook", qty=1, amount=12.0, card="card-9")
    log.run()
    print(f"-- charges {payment.charges}, notebooks in stock {inventory.stock['notebook']}")


if __name__ == "__main__":
    main()
