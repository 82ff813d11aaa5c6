"""The transactional outbox on SQLite: no event lost between a commit and a publish.

Saving a journal entry and publishing ``entry.created`` are two writes to two
systems. Committing and then publishing (a *dual write*) loses the event if
the process dies in between. The outbox makes them one write: the entry and
its event go into the same database transaction, and a relay publishes
events from the outbox table afterwards, marking each one once the broker
has it. A relay that dies between publishing and marking publishes that
event again on restart, so consumers must skip event ids they have seen.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable

Publish = Callable[[str, bytes], None]
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, user TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL, payload BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published = 0;
"""


def open_db(path: str = ":memory:") -> sqlite3.Connection:
    """A database with the entries table and its outbox; explicit transactions only."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    return db


def save_entry_then_publish(db: sqlite3.Connection, publish: Publish, user: str,
                            text: str) -> int:
    """The dual write: commit, then publish. A crash in between loses the event."""
    entry_id = db.execute("INSERT INTO entries (user, text) VALUES (?, ?)",
                          (user, text)).lastrowid
    publish("entry.created", json.dumps({"entry_id": entry_id, "user": user}).encode())
    return entry_id


# --8<-- [start:save]
def save_entry(db: sqlite3.Connection, user: str, text: str) -> int:
    """Store the entry and its event in one transaction: both or neither."""
    if not text.strip():
        raise ValueError(f"entry of {user!r} is empty: nothing to save")
    db.execute("BEGIN IMMEDIATE")
    try:
        entry_id = db.execute("INSERT INTO entries (user, text) VALUES (?, ?)",
                              (user, text)).lastrowid
        event = {"event_id": str(uuid.uuid4()), "entry_id": entry_id, "user": user}
        db.execute("INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)",
                   (event["event_id"], "entry.created", json.dumps(event).encode()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return entry_id
# --8<-- [end:save]


# --8<-- [start:relay]
def relay_once(db: sqlite3.Connection, publish: Publish, batch: int = 100) -> int:
    """Publish unpublished events in outbox order, marking each after the broker has it.

    Returns the number published. If ``publish`` raises, the event stays
    unmarked and is tried again on the next call; so does one whose mark was
    lost to a crash, which is why consumers must deduplicate by ``event_id``.
    """
    rows = db.execute("SELECT id, topic, payload FROM outbox WHERE published = 0 "
                      "ORDER BY id LIMIT ?", (batch,)).fetchall()
    for row_id, topic, payload in rows:
        publish(topic, payload)
        db.execute("UPDATE outbox SET published = 1 WHERE id = ?", (row_id,))
    return len(rows)
# --8<-- [end:relay]


class Deduplicating:
    """A consumer that applies each ``event_id`` once and counts the duplicates it skipped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.applied: list[int] = []
        self.duplicates = 0

    def __call__(self, topic: str, payload: bytes) -> None:
        event = json.loads(payload)
        if event["event_id"] in self.seen:
            self.duplicates += 1
            return
        self.seen.add(event["event_id"])
        self.applied.append(event["entry_id"])


def main() -> None:
    """The dual write loses an event to a crash; the outbox loses none, and dedupes."""
    sent: list[bytes] = []

    def dies_before_publishing(topic: str, payload: bytes) -> None:
        raise SystemExit("process killed after COMMIT, before publish")

    db = open_db()
    save_entry_then_publish(db, lambda topic, payload: sent.append(payload), "ana", "ran 3 km")
    try:
        save_entry_then_publish(db, dies_before_publishing, "ana", "slept badly")
    except SystemExit:
        pass
    stored = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    print(f"dual write: entries stored {stored}, events published {len(sent)}: "
          f"{stored - len(sent)} lost for good")

    db = open_db()
    for text in ("ran 3 km", "slept badly", "set a goal: 10 km"):
        save_entry(db, "ana", text)
    consumer, crashes = Deduplicating(), iter([True])

    def publish_then_die_once(topic: str, payload: bytes) -> None:
        consumer(topic, payload)  # the broker has it...
        if json.loads(payload)["entry_id"] == 2 and next(crashes, False):
            raise SystemExit("relay killed after publish, before marking")  # ...unmarked

    try:
        relay_once(db, publish_then_die_once)
    except SystemExit:
        pass
    relay_once(db, publish_then_die_once)  # the restarted relay
    print(f"outbox    : entries {consumer.applied} applied once each, "
          f"{consumer.duplicates} duplicate skipped")


if __name__ == "__main__":
    main()
