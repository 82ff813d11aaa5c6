"""Mistake: believing in exactly-once delivery. The broker keeps its promise; the card is charged twice.

``TransactionalLog`` behaves like a broker with "exactly-once semantics":
a consumer's output records and its offset commit in one transaction, so a
crash before the commit discards the outputs and the input is delivered
again. Inside the log, every order yields exactly one ``PaymentCaptured``.

The payment consumer also calls a card gateway, which is outside that
transaction. A crash after the charge and before the commit redelivers the
order and charges the card again. The fix is not a broker setting: the
consumer passes an *idempotency key* derived from the event id, and the
gateway answers a repeated key with the first charge instead of a new one.
Exactly once is an effect you build at every system you touch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderPlaced:
    """An order to pay for; ``id`` is the event id, assigned once."""

    id: str
    order_id: str
    cents: int


class CardGateway:
    """An external payment API. It honours idempotency keys, as most do."""

    def __init__(self) -> None:
        self.charges: list[tuple[str, int]] = []
        self._by_key: dict[str, tuple[str, int, str]] = {}

    def charge(self, order_id: str, cents: int, idempotency_key: str | None = None) -> str:
        """Charge the card; a repeated key returns the first charge's id and charges nothing."""
        if cents <= 0:
            raise ValueError(f"order {order_id}: amount must be positive, not {cents}")
        if idempotency_key in self._by_key:
            first_order, first_cents, charge_id = self._by_key[idempotency_key]
            if (first_order, first_cents) != (order_id, cents):
                raise ValueError(f"idempotency key {idempotency_key!r} was used for "
                                 f"{first_order} ({first_cents}), not {order_id} ({cents})")
            return charge_id
        self.charges.append((order_id, cents))
        charge_id = f"ch-{len(self.charges)}"
        if idempotency_key is not None:
            self._by_key[idempotency_key] = (order_id, cents, charge_id)
        return charge_id


Emit = Callable[[tuple[str, str, str]], None]
Handler = Callable[[OrderPlaced, Emit], None]


class TransactionalLog:
    """Input, outputs and the committed offset, changed together or not at all."""

    def __init__(self, events: list[OrderPlaced]) -> None:
        self.events, self.committed, self.outputs = events, 0, []

    def process(self, handler: Handler, crashes: dict[str, int]) -> None:
        """Consume to the end; ``crashes[event id]`` times, die after handling, before commit."""
        left = dict(crashes)
        while self.committed < len(self.events):
            event, pending = self.events[self.committed], []
            handler(event, pending.append)
            if left.get(event.id, 0) > 0:
                left[event.id] -= 1
                continue  # aborted: pending outputs dropped, offset not moved
            self.outputs.extend(pending)
            self.committed += 1


# --8<-- [start:handlers]
def trusting_payment(gateway: CardGateway) -> Handler:
    """Broken: 'the broker is exactly-once, so this runs once'."""
    def handle(event: OrderPlaced, emit: Emit) -> None:
        charge_id = gateway.charge(event.order_id, event.cents)
        emit(("PaymentCaptured", event.order_id, charge_id))
    return handle


def keyed_payment(gateway: CardGateway) -> Handler:
    """Fixed: the event id travels to the gateway as an idempotency key."""
    def handle(event: OrderPlaced, emit: Emit) -> None:
        charge_id = gateway.charge(event.order_id, event.cents,
                                   idempotency_key=f"payment-{event.id}")
        emit(("PaymentCaptured", event.order_id, charge_id))
    return handle
# --8<-- [end:handlers]


def main() -> None:
    """Two orders; the consumer dies once after charging o-1, before its commit."""
    orders = [OrderPlaced("ev-1", "o-1", 2400), OrderPlaced("ev-2", "o-2", 1200)]
    for make in (trusting_payment, keyed_payment):
        gateway, log = CardGateway(), TransactionalLog(orders)
        log.process(make(gateway), crashes={"ev-1": 1})
        print(f"{make.__name__:<16}: log outputs {len(log.outputs)} PaymentCaptured "
              f"(exactly once), card charged {gateway.charges}")


if __name__ == "__main__":
    main()
