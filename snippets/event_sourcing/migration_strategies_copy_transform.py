"""Copy-and-transform: migrate a store into a new one, splitting a stream on the way.

The first version of the coaching app kept everything a user did in one
stream, ``user-ana``: journal entries, goals and sessions. Goals now need
their own streams (``goal-<id>``) so two agents can work on two goals without
conflicting. Stored events never change, so the migration reads the old
store in global order, transforms each event (split, rename, upcast, drop)
and appends the results to a new store.

Each batch of new events is written in one transaction together with the
migration's checkpoint (the last old position done), so the copy can stop or
crash at any point and resume without losing or repeating an event. Readers
move to the new store only after a final catch-up and a verification.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]


class Source(Protocol):
    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


class TargetStore:
    """The new store (SQLite), with the migration's checkpoint in the same database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.isolation_level = None
        self.conn = conn
        conn.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                     "stream TEXT, version INTEGER, type TEXT, data TEXT, "
                     "UNIQUE (stream, version))")
        conn.execute("CREATE TABLE IF NOT EXISTS migration (only_row INTEGER PRIMARY KEY "
                     "CHECK (only_row = 1), source_position INTEGER NOT NULL)")
        conn.execute("INSERT OR IGNORE INTO migration VALUES (1, 0)")

    def checkpoint(self) -> int:
        return self.conn.execute("SELECT source_position FROM migration").fetchone()[0]

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        rows = self.conn.execute("SELECT * FROM events WHERE position > ? ORDER BY position "
                                 "LIMIT ?", (after, limit))
        return [RecordedEvent(p, s, v, t, json.loads(d)) for p, s, v, t, d in rows]


# --8<-- [start:transform]
class Migration:
    """Copies ``source`` into ``target``, batch by batch, resumable at any point.

    Args:
        source: the old store (anything with ``read_all(after=, limit=)``).
        target: the new store, which also keeps the migration's checkpoint.
        retired: event types deliberately not carried over (the old store keeps them).
    """

    def __init__(self, source: Source, target: TargetStore, *,
                 retired: Iterable[str] = ("MoodNoted",), batch_size: int = 100) -> None:
        self.source, self.target, self.batch_size = source, target, batch_size
        self.retired = set(retired)

    def transform(self, event: Any) -> list[tuple[str, str, dict[str, Any]]]:
        """One old event -> zero or more (stream, type, data) for the new store.

        Raises:
            ValueError: no rule covers the event; the message names its position.
        """
        data, where = dict(event.data), f"position {event.position} ({event.stream})"
        if event.type in self.retired:
            return []
        if event.type in ("GoalCreated", "GoalSet", "SessionLogged", "GoalAchieved"):
            goal = data.pop("goal_id", None)  # the split: goals move to their own streams
            if not goal:
                raise ValueError(f"{where}: {event.type} has no goal_id")
            type_ = "GoalSet" if event.type == "GoalCreated" else event.type  # the rename
            return [(f"goal-{goal}", type_, data)]
        if event.type == "EntryWritten":
            return [(f"journal-{event.stream.removeprefix('user-')}", "EntryWritten", data)]
        raise ValueError(f"{where}: no rule for {event.type!r}")
    # --8<-- [end:transform]

    # --8<-- [start:migrate]
    def run_batch(self) -> int:
        """Copy the next batch; return how many old events it covered (0: caught up)."""
        conn = self.target.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            batch = self.source.read_all(after=self.target.checkpoint(), limit=self.batch_size)
            for event in batch:
                for stream, type_, data in self.transform(event):
                    (version,) = conn.execute("SELECT count(*) FROM events WHERE stream = ?",
                                              (stream,)).fetchone()
                    conn.execute("INSERT INTO events (stream, version, type, data) VALUES "
                                 "(?, ?, ?, ?)", (stream, version + 1, type_, json.dumps(data)))
            if batch:
                conn.execute("UPDATE migration SET source_position = ?", (batch[-1].position,))
            conn.execute("COMMIT")  # the new events and the checkpoint, together
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(batch)

    def run(self) -> None:
        """Copy until caught up (run it again later to pick up new events)."""
        while self.run_batch():
            pass

    def verify(self) -> dict[str, int]:
        """Replay both sides: every old event must map to exactly the new events found.

        Returns the number of events per new stream.
        """
        expected = [t for e in read_everything(self.source) for t in self.transform(e)]
        found = [(e.stream, e.type, e.data) for e in read_everything(self.target)]
        if sorted(expected, key=repr) != sorted(found, key=repr):
            raise AssertionError(f"migration differs: {len(expected)} events expected, "
                                 f"{len(found)} found")
        return dict(sorted(Counter(stream for stream, _, _ in found).items()))
    # --8<-- [end:migrate]


def read_everything(store: Source) -> list[Any]:
    events, after = [], 0
    while batch := store.read_all(after=after, limit=500):
        events += batch
        after = batch[-1].position
    return events


class MemorySource:
    """The old store: a list of events with ``read_all``."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, stream: str, type_: str, **data: Any) -> None:
        version = sum(1 for e in self.events if e.stream == stream) + 1
        self.events.append(RecordedEvent(len(self.events) + 1, stream, version, type_, data))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return self.events[after:after + limit]


# --8<-- [start:demo]
def main() -> None:
    """Split user-ana into journal and goal streams; crash half-way; resume; verify."""
    old = MemorySource()
    old.add("user-ana", "GoalCreated", goal_id="run", title="Run 5 km", target=3)
    old.add("user-ana", "EntryWritten", entry_id="e1", words=180)
    old.add("user-ana", "SessionLogged", goal_id="run", entry_id="e1")
    old.add("user-ana", "MoodNoted", mood="tired")
    old.add("user-ana", "ReminderSent", at="21:00")  # nobody planned a rule for this
    old.add("user-ana", "GoalSet", goal_id="read", title="Read", target=5)
    old.add("user-ana", "EntryWritten", entry_id="e2", words=90)
    old.add("user-ana", "SessionLogged", goal_id="read", entry_id="e2")
    old.add("user-ben", "EntryWritten", entry_id="e3", words=40)

    with tempfile.TemporaryDirectory() as tmp:
        target = TargetStore(sqlite3.connect(Path(tmp) / "new.db"))
        migration = Migration(old, target, batch_size=3)
        migration.run_batch()
        print(f"batch 1        : checkpoint {target.checkpoint()}")
        try:
            migration.run_batch()
        except ValueError as error:
            print(f"batch 2 failed : {error}; checkpoint still {target.checkpoint()}")
        migration.retired.add("ReminderSent")  # the team decides reminders are not kept
        migration.run()
        print(f"resumed        : checkpoint {target.checkpoint()}")
        print(f"verified       : {migration.verify()}")
        for event in target.read_all():
            print(f"  {event.position} {event.stream:<12} v{event.version} {event.type:<13} "
                  f"{event.data}")
        target.conn.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
