"""An idempotent consumer: an inbox table written in the same transaction as the effect.

Brokers deliver at least once, so a handler sees some messages twice. The
consumer inserts ``(consumer, message key)`` into an ``inbox`` table inside
the SQLite transaction that applies the side effect. A redelivery finds the
row and changes nothing; a crash before the commit loses the row and the
effect together, so the redelivery applies the message exactly once.

The inbox keeps a row only as long as the retention window: a redelivery or
a manual redrive that arrives after its row was purged is applied again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """One delivery from the broker: its id, type, data and correlation id."""

    message_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    correlation_id: str = ""


Handler = Callable[[sqlite3.Connection, Message], None]
KeyOf = Callable[[Message], str]

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    consumer   TEXT NOT NULL,
    key        TEXT NOT NULL,
    handled_at REAL NOT NULL,
    PRIMARY KEY (consumer, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_by_age ON inbox (handled_at);
"""


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken with BEGIN IMMEDIATE so writers queue, not fail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --8<-- [start:consumer]
class IdempotentConsumer:
    """Applies each message at most once per consumer, however often it arrives.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``); the
            handler's writes and the inbox row share its transaction.
        name: the consumer's name: part of the key, so that two consumers of
            one message (fan-out) each apply it.
        handler: writes the side effect with the connection it is given.
        key: what identifies a message; the message id unless you know better.
        clock: seconds since the epoch, for the retention window.
    """

    def __init__(self, conn: sqlite3.Connection, name: str, handler: Handler, *,
                 key: KeyOf = lambda m: m.message_id,
                 clock: Callable[[], float] = time.time) -> None:
        if conn.isolation_level is not None:
            raise ValueError("the connection must be in autocommit mode "
                             "(isolation_level=None) so that the consumer owns the transaction")
        conn.executescript(SCHEMA)
        self.conn, self.name, self._handler, self._key, self._clock = (
            conn, name, handler, key, clock)

    def handle(self, message: Message) -> bool:
        """Apply ``message`` unless this consumer already has; True if applied.

        If the handler raises, nothing is written (neither effect nor inbox
        row) and the error propagates, so the broker will deliver it again.
        """
        key = self._key(message)
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"message {message!r} has no usable idempotency key: {key!r}")
        with immediate(self.conn):
            inserted = self.conn.execute(
                "INSERT INTO inbox (consumer, key, handled_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING", (self.name, key, self._clock())).rowcount
            if inserted == 0:
                return False  # seen before: the effect is already committed
            self._handler(self.conn, message)
        return True
# --8<-- [end:consumer]


# --8<-- [start:purge]
def purge_inbox(conn: sqlite3.Connection, *, retention: float, now: float) -> int:
    """Forget inbox rows older than ``retention`` seconds; return how many.

    The retention must outlast every way a message can come back: broker
    redelivery, consumer-group rewinds, and humans redriving a dead-letter
    queue days later.
    """
    if retention <= 0:
        raise ValueError(f"retention must be positive, not {retention}")
    with immediate(conn):
        return conn.execute("DELETE FROM inbox WHERE handled_at < ?",
                            (now - retention,)).rowcount
# --8<-- [end:purge]


def count_sessions(conn: sqlite3.Connection, message: Message) -> None:
    """The goal tracker's side effect: one more coaching session for a goal."""
    conn.execute("CREATE TABLE IF NOT EXISTS sessions (goal TEXT PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT INTO sessions VALUES (?, 1) ON CONFLICT (goal) DO UPDATE SET n = n + 1",
                 (message.data["goal"],))


def count_words(conn: sqlite3.Connection, message: Message) -> None:
    """The word counter's side effect: add the entry's words to a running total."""
    conn.execute("CREATE TABLE IF NOT EXISTS words (total INTEGER)")
    conn.execute("INSERT INTO words SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM words)")
    conn.execute("UPDATE words SET total = total + ?", (message.data["words"],))


def main() -> None:
    """Deliver entries twice, fan one out to two consumers, and purge too early."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    now = [0.0]

    def clock() -> float:  # a fake clock, so that the output is stable
        return now[0]

    goals = IdempotentConsumer(conn, "goal-tracker", count_sessions, clock=clock)
    words = IdempotentConsumer(conn, "word-counter", count_words, clock=clock)
    entry = Message("msg-1", "EntryWritten", {"goal": "run 5 km", "words": 120}, "session-7")
    later = Message("msg-2", "EntryWritten", {"goal": "run 5 km", "words": 80}, "session-7")

    print("first delivery  :", goals.handle(entry), words.handle(entry))
    print("redelivery      :", goals.handle(entry), words.handle(entry))
    print("second entry    :", goals.handle(later), words.handle(later))
    sessions = conn.execute("SELECT n FROM sessions").fetchone()[0]
    total = conn.execute("SELECT total FROM words").fetchone()[0]
    print(f"state           : {sessions} sessions, {total} words")

    applied: list[str] = []
    by_session = IdempotentConsumer(conn, "keyed-by-correlation",
                                    lambda _, m: applied.append(m.message_id),
                                    key=lambda m: m.correlation_id, clock=clock)
    for message in (entry, later):
        by_session.handle(message)
    print(f"correlation key : applied {applied} <- msg-2 is lost: same session id")

    now[0] = 8 * 86_400.0  # eight days later, a human redrives msg-1 from the DLQ
    removed = purge_inbox(conn, retention=7 * 86_400, now=now[0])
    print(f"purged          : {removed} inbox rows older than 7 days")
    print("redrive msg-1   :", goals.handle(entry), "<- applied twice: retention < redrive delay")
    print(f"state           : {conn.execute('SELECT n FROM sessions').fetchone()[0]} sessions")


if __name__ == "__main__":
    main()
