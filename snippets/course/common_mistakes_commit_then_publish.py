"""Mistake: losing events between commit and publish (the dual write).

Saving an entry and publishing ``entry.created`` are writes to two systems,
and no order of the two is safe. Commit, then publish: a crash in between
stores an entry that no consumer ever hears about. Publish, then commit: a
commit that fails leaves consumers reacting to an entry that does not exist.

The fix is the *transactional outbox*: the entry and its event are written
in one database transaction, the event into an ``outbox`` table; a relay
publishes from the outbox and marks each row once the broker has it. A
relay that dies between publishing and marking publishes that row again,
so the consumer skips event ids it has already applied.
"""

from __future__ import annotations

import sqlite3


class Crash(Exception):
    """The process dies here."""


def open_db() -> sqlite3.Connection:
    """Entries, and the outbox beside them; explicit transactions only."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript("""
        CREATE TABLE entries (id TEXT PRIMARY KEY, text TEXT NOT NULL);
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                             event_id TEXT UNIQUE NOT NULL, entry_id TEXT NOT NULL,
                             published INTEGER NOT NULL DEFAULT 0);""")
    return db


def stored(db: sqlite3.Connection) -> list[str]:
    """Ids of the entries the database really has."""
    return [row[0] for row in db.execute("SELECT id FROM entries ORDER BY id")]


# --8<-- [start:broken]
def commit_then_publish(db: sqlite3.Connection, broker: list[str], entry_id: str,
                        text: str, crash: bool = False) -> None:
    """Broken: a crash after the commit loses the event."""
    db.execute("INSERT INTO entries VALUES (?, ?)", (entry_id, text))  # autocommit
    if crash:
        raise Crash(f"killed after committing {entry_id}")
    broker.append(f"ev-{entry_id}")


def publish_then_commit(db: sqlite3.Connection, broker: list[str], entry_id: str,
                        text: str, crash: bool = False) -> None:
    """Also broken: a failed commit leaves a ghost event."""
    db.execute("BEGIN")
    db.execute("INSERT INTO entries VALUES (?, ?)", (entry_id, text))
    broker.append(f"ev-{entry_id}")
    if crash:
        db.execute("ROLLBACK")
        raise Crash(f"commit of {entry_id} failed after its event was published")
    db.execute("COMMIT")
# --8<-- [end:broken]


# --8<-- [start:fixed]
def save_with_outbox(db: sqlite3.Connection, entry_id: str, text: str) -> None:
    """Fixed: the entry and its event commit together, or neither does."""
    if not text.strip():
        raise ValueError(f"entry {entry_id!r} is empty: nothing to save")
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("INSERT INTO entries VALUES (?, ?)", (entry_id, text))
        db.execute("INSERT INTO outbox (event_id, entry_id) VALUES (?, ?)",
                   (f"ev-{entry_id}", entry_id))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def relay(db: sqlite3.Connection, broker: list[str], crash_after: set[str] = frozenset()) -> None:
    """Publish unpublished outbox rows in order; mark each one after the broker has it."""
    for seq, event_id in db.execute(
            "SELECT seq, event_id FROM outbox WHERE published = 0 ORDER BY seq").fetchall():
        broker.append(event_id)
        if event_id in crash_after:
            raise Crash(f"relay killed after publishing {event_id}, before marking it")
        db.execute("UPDATE outbox SET published = 1 WHERE seq = ?", (seq,))


def consume(broker: list[str]) -> tuple[list[str], int]:
    """An idempotent consumer: apply each event id once; count the duplicates skipped."""
    applied: list[str] = []
    for event_id in broker:
        if event_id not in applied:
            applied.append(event_id)
    return applied, len(broker) - len(applied)
# --8<-- [end:fixed]


def main() -> None:
    """Three entries; the process dies at the worst moment while saving the second."""
    entries = [("e-1", "ran 5 km"), ("e-2", "slept badly"), ("e-3", "set a goal")]
    for save in (commit_then_publish, publish_then_commit):
        db, broker = open_db(), []
        for entry_id, text in entries:
            try:
                save(db, broker, entry_id, text, crash=entry_id == "e-2")
            except Crash:
                pass
        delivered = [e.removeprefix("ev-") for e in broker]
        print(f"{save.__name__:<19}: stored {stored(db)}, delivered {delivered}"
              f" -> lost {sorted(set(stored(db)) - set(delivered))},"
              f" ghosts {sorted(set(delivered) - set(stored(db)))}")
    db, broker = open_db(), []
    for entry_id, text in entries:
        save_with_outbox(db, entry_id, text)  # a crash here would roll back both writes
    try:
        relay(db, broker, crash_after={"ev-e-2"})
    except Crash:
        relay(db, broker)  # the restarted relay
    applied, duplicates = consume(broker)
    print(f"outbox + relay     : stored {stored(db)}, delivered "
          f"{[e.removeprefix('ev-') for e in applied]}, {duplicates} duplicate skipped")


if __name__ == "__main__":
    main()
