"""Change data capture with a trigger and a poller: events from a system you cannot change.

The legacy goals app writes its ``goals`` table directly, and nobody can add
an outbox to its code. Triggers can be added to its database: every
INSERT, UPDATE and DELETE also writes a row to ``goal_changes``, *inside the
legacy transaction*, so a rolled-back write leaves no change behind and a
committed one always does. A poller reads the changes after its checkpoint,
turns each into an event and publishes it, then moves the checkpoint.

Rows that existed before the triggers are captured as ``goal.snapshot``
events, in the same transaction that installs the triggers.

A poller that dies between publishing and saving its checkpoint publishes
those changes again, so each event's id is the change's sequence number and
the consumer skips ids it has applied. SQLite runs one writer at a time, so
sequence order is commit order here; on PostgreSQL it is not, and a poller
by position can skip a late commit (log-based CDC such as Debezium reads the
write-ahead log instead).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]

# --8<-- [start:triggers]
CAPTURE = """
BEGIN IMMEDIATE;
CREATE TABLE goal_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,
                           goal_id TEXT NOT NULL, user TEXT, km INTEGER);
CREATE TRIGGER goals_insert AFTER INSERT ON goals BEGIN
    INSERT INTO goal_changes (op, goal_id, user, km) VALUES ('created', NEW.id, NEW.user, NEW.km);
END;
CREATE TRIGGER goals_update AFTER UPDATE ON goals BEGIN
    INSERT INTO goal_changes (op, goal_id, user, km) VALUES ('updated', NEW.id, NEW.user, NEW.km);
END;
CREATE TRIGGER goals_delete AFTER DELETE ON goals BEGIN
    INSERT INTO goal_changes (op, goal_id) VALUES ('deleted', OLD.id);
END;
CREATE TABLE poller_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO poller_checkpoint VALUES (1, 0);
-- the rows that exist already, captured in the same transaction as the triggers
INSERT INTO goal_changes (op, goal_id, user, km) SELECT 'snapshot', id, user, km FROM goals
    ORDER BY id;
COMMIT;
"""
# --8<-- [end:triggers]


def legacy_db(path: str = ":memory:", timeout: float = 5.0) -> sqlite3.Connection:
    """The legacy app's database, as it was before anyone thought of events."""
    db = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    db.execute("CREATE TABLE IF NOT EXISTS goals (id TEXT PRIMARY KEY, user TEXT NOT NULL, km INTEGER NOT NULL)")
    return db


def install_capture(db: sqlite3.Connection) -> None:
    """Add the change table, its triggers, the checkpoint, and a snapshot of existing rows.

    All in one transaction: no write can fall between the snapshot and the
    triggers, so every row is captured exactly once, either by one or by the other.
    """
    try:
        db.executescript(CAPTURE)
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# --8<-- [start:poller]
def poll(db: sqlite3.Connection, publish: Callable[[Event], None], batch: int = 100,
         crash_after: int | None = None) -> int:
    """Publish the changes after the checkpoint, in order, then move the checkpoint.

    Returns how many changes were published. ``crash_after`` kills the
    poller after publishing that change and before saving the checkpoint.
    """
    (checkpoint,) = db.execute("SELECT seq FROM poller_checkpoint").fetchone()
    rows = db.execute("SELECT seq, op, goal_id, user, km FROM goal_changes WHERE seq > ? "
                      "ORDER BY seq LIMIT ?", (checkpoint, batch)).fetchall()
    for seq, op, goal_id, user, km in rows:
        event = {"id": f"goals-{seq}", "type": f"goal.{op}", "goal_id": goal_id}
        if op != "deleted":
            event |= {"user": user, "km": km}
        publish(event)
        if seq == crash_after:
            raise SystemExit(f"poller killed after publishing change {seq}")
    if rows:
        db.execute("UPDATE poller_checkpoint SET seq = ?", (rows[-1][0],))
        db.execute("DELETE FROM goal_changes WHERE seq <= ?", (rows[-1][0],))  # prune
    return len(rows)
# --8<-- [end:poller]


class GoalBoard:
    """A consumer's read model of goals, built only from the events."""

    def __init__(self) -> None:
        self.goals: dict[str, tuple[str, int]] = {}
        self.applied: set[str] = set()
        self.duplicates = 0

    def __call__(self, event: Event) -> None:
        if event["id"] in self.applied:
            self.duplicates += 1
            return
        self.applied.add(event["id"])
        if event["type"] == "goal.deleted":
            self.goals.pop(event["goal_id"], None)
        else:
            self.goals[event["goal_id"]] = (event["user"], event["km"])


def main() -> None:
    """The legacy app keeps writing; the goal board follows it through CDC."""
    db = legacy_db()
    db.execute("INSERT INTO goals VALUES ('g-1', 'ana', 10)")   # written before capture
    db.execute("INSERT INTO goals VALUES ('g-9', 'caro', 21)")
    install_capture(db)
    db.execute("INSERT INTO goals VALUES ('g-2', 'ana', 5)")
    db.execute("UPDATE goals SET km = 12 WHERE id = 'g-1'")
    db.execute("BEGIN")
    db.execute("INSERT INTO goals VALUES ('g-3', 'ben', 3)")
    db.execute("ROLLBACK")                                       # never happened
    db.execute("DELETE FROM goals WHERE id = 'g-2'")

    board, seen = GoalBoard(), []

    def publish(event: Event) -> None:
        seen.append(f"{event['type'].removeprefix('goal.')} {event['goal_id']}")
        board(event)

    try:
        poll(db, publish, crash_after=3)
    except SystemExit as crash:
        print(f"poller   : published {seen}, then {crash}")
    seen.clear()
    poll(db, publish)
    print(f"restarted: published {seen}")
    print(f"board    : {board.goals}, {board.duplicates} duplicates skipped")
    legacy = {goal_id: (user, km) for goal_id, user, km in db.execute("SELECT * FROM goals")}
    print(f"legacy   : {legacy}")


if __name__ == "__main__":
    main()
