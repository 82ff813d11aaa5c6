"""At-most-once, at-least-once, and exactly-once *effect*, with one crash each.

A goal tracker counts journal entries into a SQLite table. The broker keeps
delivering a message until it is acknowledged. The consumer crashes once,
between its two steps, and the three strategies differ only in the order of
those steps and in what they store:

* ack first, then apply: the crash loses an entry (at most once);
* apply, then ack: the crash makes the entry count twice (at least once);
* apply and remember the message id in one transaction, then ack: the
  redelivery is recognised and skipped, so the count is right. Delivery was
  still at least once; the *effect* happened exactly once.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class Crash(Exception):
    """Stands in for the process dying between two steps."""


@dataclass(frozen=True, slots=True)
class Message:
    """A delivery from the broker: a stable id, a payload and the attempt number."""

    id: str
    body: str
    deliveries: int


class Redelivering:
    """A broker in miniature: a message comes back until it is acknowledged."""

    def __init__(self, bodies: list[tuple[str, str]]) -> None:
        self._waiting = deque(Message(i, b, 0) for i, b in bodies)
        self.deliveries = 0

    def receive(self) -> Message | None:
        if not self._waiting:
            return None
        message = self._waiting.popleft()
        self.deliveries += 1
        leased = Message(message.id, message.body, message.deliveries + 1)
        self._waiting.appendleft(leased)  # stays until acked: a crash means redelivery
        return leased

    def ack(self, message: Message) -> None:
        if self._waiting and self._waiting[0].id == message.id:
            self._waiting.popleft()


def open_tracker() -> sqlite3.Connection:
    """The goal tracker's own database: a counter, and the ids it has applied."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE sessions (user TEXT PRIMARY KEY, count INTEGER NOT NULL)")
    db.execute("CREATE TABLE applied (message_id TEXT PRIMARY KEY)")
    return db


def count_session(db: sqlite3.Connection, user: str) -> None:
    db.execute("INSERT INTO sessions VALUES (?, 1) "
               "ON CONFLICT (user) DO UPDATE SET count = count + 1", (user,))


def at_most_once(db: sqlite3.Connection, broker: Redelivering, message: Message,
                 crash: Callable[[], None]) -> None:
    """Acknowledge, then apply: a crash in between loses the message."""
    broker.ack(message)
    crash()
    count_session(db, message.body)


def at_least_once(db: sqlite3.Connection, broker: Redelivering, message: Message,
                  crash: Callable[[], None]) -> None:
    """Apply, then acknowledge: a crash in between applies it twice."""
    count_session(db, message.body)
    crash()
    broker.ack(message)


# --8<-- [start:idempotent]
def exactly_once_effect(db: sqlite3.Connection, broker: Redelivering, message: Message,
                        crash: Callable[[], None]) -> None:
    """Apply and record the id in one transaction; a redelivery finds the id and skips."""
    db.execute("BEGIN IMMEDIATE")
    try:
        seen = db.execute("SELECT 1 FROM applied WHERE message_id = ?", (message.id,)).fetchone()
        if not seen:
            count_session(db, message.body)
            db.execute("INSERT INTO applied VALUES (?)", (message.id,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    crash()
    broker.ack(message)
# --8<-- [end:idempotent]


def consume(strategy: Callable[..., None], *, crash_on: str) -> tuple[int, int]:
    """Feed three entries through ``strategy``, crashing once on message ``crash_on``.

    Returns:
        (sessions counted, deliveries the broker made).
    """
    broker = Redelivering([("m1", "ana"), ("m2", "ana"), ("m3", "ana")])
    db = open_tracker()
    crashed = False

    def crash_once(message_id: str) -> Callable[[], None]:
        def crash() -> None:
            nonlocal crashed
            if message_id == crash_on and not crashed:
                crashed = True
                raise Crash(f"consumer died while handling {message_id}")
        return crash

    while (message := broker.receive()) is not None:
        try:
            strategy(db, broker, message, crash_once(message.id))
        except Crash:
            continue  # the process restarts; the broker still holds what was not acked
    total = db.execute("SELECT coalesce(sum(count), 0) FROM sessions").fetchone()[0]
    return total, broker.deliveries


def main() -> None:
    """Three entries, one crash on the second, three strategies."""
    for strategy in (at_most_once, at_least_once, exactly_once_effect):
        counted, deliveries = consume(strategy, crash_on="m2")
        print(f"{strategy.__name__:<19}: {deliveries} deliveries, counted {counted} of 3 entries")


if __name__ == "__main__":
    main()
