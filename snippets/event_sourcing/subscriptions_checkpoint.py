"""A durable subscription whose checkpoint lives with the read model, not with the events.

The subscriber reads the event log after its checkpoint, applies a batch to
its read model, and saves the new checkpoint **in the same transaction of the
read model's own database**. Then the checkpoint always describes the read
model it sits next to: after a crash mid-batch both are at the last batch,
and after restoring the read model from a backup, the checkpoint comes back
with it and the subscriber re-reads what the backup lacks.

Kept anywhere else (in the event store, in the broker's consumer offsets) the
checkpoint can disagree with the read model: a crash between the two commits
counts a batch twice, and a restored backup skips events forever.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ProjectionError(Exception):
    """An event the read model cannot apply; its batch was rolled back."""


class CheckpointError(Exception):
    """The read model's checkpoint is past the head of the event log it was given."""


class EventLog:
    """The event store: one SQLite file, events in a global order."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                         "type TEXT NOT NULL, data TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS subscriptions (name TEXT PRIMARY KEY, "
                         "position INTEGER NOT NULL)")  # only the wrong design uses this

    def append(self, type_: str, data: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO events (type, data) VALUES (?, ?)", (type_, json.dumps(data)))

    def read_all(self, after: int, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db.execute("SELECT * FROM events WHERE position > ? ORDER BY position "
                                "LIMIT ?", (after, limit)).fetchall()
        return [(p, t, json.loads(d)) for p, t, d in rows]

    def head(self) -> int:
        """The position of the last event, 0 for an empty log."""
        return self._db.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]

    def checkpoint(self, name: str) -> int:
        row = self._db.execute("SELECT position FROM subscriptions WHERE name = ?",
                               (name,)).fetchone()
        return row[0] if row else 0

    def save_checkpoint(self, name: str, position: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO subscriptions VALUES (?, ?)", (name, position))


def check_until(until: object) -> None:
    """Refuse an ``until`` that is not None or a position (an int of 0 or more)."""
    if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
        raise TypeError(f"until must be an int position or None, got {until!r}")
    if until is not None and until < 0:
        raise ValueError(f"until={until} is negative; positions start at 1")


# --8<-- [start:subscriber]
class WordsPerDay:
    """A read model (entries and words per day) fed by a durable catch-up subscription.

    Args:
        path: the read model's SQLite file; its checkpoint lives in it too.
        batch: events per transaction, at least 1.

    Raises:
        TypeError: ``batch`` is not an int.
        ValueError: ``batch`` is below 1.
    """

    name = "words_per_day"

    def __init__(self, path: str | Path, *, batch: int = 50) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int):
            raise TypeError(f"batch must be an int, got {batch!r}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1 event, got {batch}")
        self.path, self.batch = Path(path), batch
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS words_per_day (day TEXT PRIMARY KEY,
                entries INTEGER NOT NULL, words INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY,
                position INTEGER NOT NULL);""")

    def checkpoint(self, log: EventLog) -> int:
        row = self.db.execute("SELECT position FROM checkpoints WHERE name = ?",
                              (self.name,)).fetchone()
        return row[0] if row else 0

    def catch_up(self, log: EventLog, *, until: int | None = None,
                 on_event: Callable[[int], None] | None = None) -> int:
        """Apply the events after the checkpoint (up to ``until``), a batch per transaction.

        Each transaction reads the checkpoint, applies the next batch and moves the
        checkpoint, so a second instance of the same subscriber waits for it and
        then starts after its batch.

        Returns:
            How many events were applied.

        Raises:
            TypeError: ``until`` is not an int.
            ValueError: ``until`` is negative or below the checkpoint.
            CheckpointError: the checkpoint is past the head of ``log``.
            ProjectionError: an event cannot be applied (its batch is rolled back).
        """
        check_until(until)
        applied = 0
        while True:
            try:
                self.db.execute("BEGIN IMMEDIATE")  # taken before reading the checkpoint
                start = self.checkpoint(log)
                batch = log.read_all(start, self._limit(log, start, until))
                for position, type_, data in batch:
                    if on_event:
                        on_event(position)  # tests crash here
                    try:
                        self.apply(type_, data)
                    except (KeyError, TypeError, ValueError) as error:
                        raise ProjectionError(f"{self.name}: cannot apply event {position} "
                                              f"({type_}): {error!r}; batch rolled back, "
                                              f"checkpoint stays at {start}") from None
                if batch:  # same transaction as the effects
                    self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                                    (self.name, batch[-1][0]))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # not after COMMIT: that batch is done
                    self.db.execute("ROLLBACK")
                raise
            if not batch:
                return applied
            applied += len(batch)

    def _limit(self, log: EventLog, start: int, until: int | None) -> int:
        if until is not None and until < start:
            raise ValueError(f"{self.name}: until={until} is below the checkpoint {start}; "
                             "applied events cannot be un-applied (rebuild from 0 to go back)")
        if start > (head := log.head()):
            raise CheckpointError(f"{self.name}: checkpoint {start} is past the head of the "
                                  f"event log ({head}): this read model was built from other "
                                  "events (another store, or one restored from an older "
                                  "backup); rebuild it instead of catching up")
        return self.batch if until is None else min(self.batch, until - start)

    def apply(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "EntryWritten":
            day, words = data["day"], data["words"]
            if not isinstance(day, str):
                raise TypeError(f"day must be a string, got {day!r}")
            if isinstance(words, bool) or not isinstance(words, int) or words < 0:
                raise ValueError(f"words must be a count of 0 or more, got {words!r}")
            self.db.execute("INSERT INTO words_per_day VALUES (?, 1, ?) ON CONFLICT (day) DO "
                            "UPDATE SET entries = entries + 1, words = words + excluded.words",
                            (day, words))

    def table(self) -> list[tuple[str, int, int]]:
        return self.db.execute("SELECT * FROM words_per_day ORDER BY day").fetchall()

    def entries(self) -> int:
        return sum(entries for _, entries, _ in self.table())
# --8<-- [end:subscriber]


# --8<-- [start:wrong]
class CheckpointInTheStore(WordsPerDay):
    """The same read model with its checkpoint kept in the event store (like a broker offset).

    Two databases, two commits: the effects, then the checkpoint.
    """

    def checkpoint(self, log: EventLog) -> int:
        return log.checkpoint(self.name)

    def catch_up(self, log: EventLog, *, until: int | None = None,
                 on_event: Callable[[int], None] | None = None) -> int:
        check_until(until)
        applied = 0
        while batch := log.read_all(start := self.checkpoint(log),
                                    self._limit(log, start, until)):
            self.db.execute("BEGIN IMMEDIATE")
            for position, type_, data in batch:
                self.apply(type_, data)
            self.db.execute("COMMIT")
            if on_event:
                on_event(batch[-1][0])  # a crash here: effects stored, checkpoint not
            log.save_checkpoint(self.name, batch[-1][0])
            applied += len(batch)
        return applied
# --8<-- [end:wrong]


class Crash(Exception):
    """Stands in for the process dying."""


def crash_at(position: int) -> Callable[[int], None]:
    def hook(current: int) -> None:
        if current == position:
            raise Crash(f"crashed at position {position}")
    return hook


def main() -> None:
    """Crash and restore a backup, with the checkpoint in the read model and in the store."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = EventLog(folder / "events.db")
        for n in range(12):
            log.append("EntryWritten", {"day": f"2025-03-0{1 + n % 3}", "words": 100 + n})
        clean = WordsPerDay(folder / "clean.db", batch=5)
        clean.catch_up(log)
        print(f"clean run                 : {clean.table()}")

        for design in (WordsPerDay, CheckpointInTheStore):
            model = design(folder / f"{design.__name__}.db", batch=5)
            print(f"{design.__name__}:")
            model.catch_up(log, until=5)
            shutil.copy(model.path, folder / "backup.db")  # a backup taken at position 5
            try:
                model.catch_up(log, on_event=crash_at(8 if design is WordsPerDay else 10))
            except Crash as error:
                print(f"  {error}; checkpoint now {model.checkpoint(log)}")
            model.catch_up(log)
            print(f"  after restart           : {model.entries()} of 12 entries counted, "
                  f"same as clean: {model.table() == clean.table()}")
            model.db.close()
            shutil.copy(folder / "backup.db", model.path)  # the read model's disk is lost
            model = design(model.path, batch=5)
            print(f"  backup restored         : checkpoint {model.checkpoint(log)}, "
                  f"applied {model.catch_up(log)} events, {model.entries()} of 12 entries "
                  f"counted, same as clean: {model.table() == clean.table()}")


if __name__ == "__main__":
    main()
