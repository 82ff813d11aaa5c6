"""A checkpointed projector: read models built from the global order, exactly once.

A projection turns events into a table that answers one question fast: how
is each goal going, how much did Ana write each day. The projector reads the
store's global order after the projection's checkpoint, applies a batch, and
saves the new checkpoint in the same SQLite transaction as the table update.
A crash therefore loses or repeats nothing: either the batch and its
checkpoint are both stored, or neither is, and the next run starts over from
the old checkpoint. Events at or below the checkpoint (a re-delivery) are
skipped; an event that arrives after a later one (an out-of-order source) and
a failing event each roll back their whole batch with an error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """The fields a projection reads (the Event Store page's RecordedEvent has them)."""

    position: int
    stream: str
    type: str
    data: dict[str, Any]


class Source(Protocol):
    """Any store with the Event Store page's ``read_all``."""

    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


class Projection(Protocol):
    """A read model: a name, its tables, and what each event does to them."""

    name: str

    def create(self, db: sqlite3.Connection) -> None: ...
    def apply(self, db: sqlite3.Connection, event: Any) -> None: ...


class ProjectionError(Exception):
    """A projection failed on an event; its batch was rolled back."""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# --8<-- [start:projections]
class GoalBoard:
    """One row per goal: title, sessions against target, achieved."""

    name = "goal_board"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS goal_board (goal TEXT PRIMARY KEY, title TEXT, "
                   "target INTEGER, sessions INTEGER DEFAULT 0, achieved INTEGER DEFAULT 0)")

    def apply(self, db: sqlite3.Connection, event: Any) -> None:
        if event.type == "GoalSet":
            db.execute("INSERT INTO goal_board (goal, title, target) VALUES (?, ?, ?)",
                       (event.stream, event.data["title"], event.data["target"]))
        elif event.type == "SessionLogged":
            db.execute("UPDATE goal_board SET sessions = sessions + 1 WHERE goal = ?",
                       (event.stream,))
        elif event.type == "GoalAchieved":
            db.execute("UPDATE goal_board SET achieved = 1 WHERE goal = ?", (event.stream,))


class WritingCalendar:
    """One row per day: how many journal entries, how many words."""

    name = "writing_calendar"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS writing_calendar (day TEXT PRIMARY KEY, "
                   "entries INTEGER NOT NULL, words INTEGER NOT NULL)")

    def apply(self, db: sqlite3.Connection, event: Any) -> None:
        if event.type == "EntryWritten":
            db.execute("INSERT INTO writing_calendar VALUES (?, 1, ?) ON CONFLICT (day) DO "
                       "UPDATE SET entries = entries + 1, words = words + excluded.words",
                       (event.data["day"], event.data["words"]))
# --8<-- [end:projections]


# --8<-- [start:projector]
class Projector:
    """Feeds read models from a source, each with its own checkpoint.

    Args:
        db: the SQLite database holding the read models and the checkpoints.
        source: the event store (anything with ``read_all(after=, limit=)``).
        projections: the read models to keep up to date.
        batch_size: events applied per transaction.
    """

    def __init__(self, db: sqlite3.Connection, source: Source,
                 projections: Sequence[Projection], *, batch_size: int = 100) -> None:
        db.isolation_level = None  # transactions are explicit: see transaction()
        self.db, self.source, self.batch_size = db, source, batch_size
        self.projections = list(projections)
        db.execute("CREATE TABLE IF NOT EXISTS checkpoints "
                   "(projection TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        for projection in self.projections:
            projection.create(db)
            db.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, 0)", (projection.name,))

    def checkpoint(self, name: str) -> int:
        """The last position the named projection has applied."""
        return self.db.execute("SELECT position FROM checkpoints WHERE projection = ?",
                               (name,)).fetchone()[0]

    def run_once(self, projection: Projection) -> int:
        """Apply one batch to one projection; return how many events it applied."""
        seen: set[int] = set()  # positions applied in this batch
        with transaction(self.db):  # the table update and the checkpoint: all or nothing
            position = start = self.checkpoint(projection.name)
            for event in self.source.read_all(after=position, limit=self.batch_size):
                if event.position <= position:
                    if event.position > start and event.position not in seen:
                        raise ProjectionError(
                            f"{projection.name}: position {event.position} arrived after "
                            f"position {position}: the source is out of order; batch rolled "
                            f"back, checkpoint stays {start}")
                    continue  # delivered again: already applied
                try:
                    projection.apply(self.db, event)
                except Exception as error:
                    raise ProjectionError(
                        f"{projection.name} failed at position {event.position} ({event.stream} "
                        f"{event.type}): {type(error).__name__} {error}; batch rolled back, "
                        f"checkpoint stays {self.checkpoint(projection.name)}") from error
                position = event.position
                seen.add(position)
            self.db.execute("UPDATE checkpoints SET position = ? WHERE projection = ?",
                            (position, projection.name))
        return len(seen)

    def catch_up(self) -> int:
        """Run every projection until none has anything left; return events applied."""
        total = 0
        for projection in self.projections:
            while applied := self.run_once(projection):
                total += applied
        return total
# --8<-- [end:projector]


class MemorySource:
    """A list of events with ``read_all``, standing in for the event store in main().

    ``overlap`` makes it re-send that many events before ``after``, as an
    at-least-once transport would after a reconnect.
    """

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.overlap = 0

    def add(self, stream: str, type_: str, **data: Any) -> None:
        self.events.append(RecordedEvent(len(self.events) + 1, stream, type_, data))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        start = max(0, after - self.overlap)
        return self.events[start:start + limit]


# --8<-- [start:demo]
def main() -> None:
    """Two read models from one stream; a re-delivery; a poison event."""
    source = MemorySource()
    source.add("goal-run", "GoalSet", title="Run 5 km", target=2)
    source.add("goal-write", "GoalSet", title="Write daily", target=7)
    for day, words in [("2025-03-03", 180), ("2025-03-03", 70), ("2025-03-04", 300)]:
        source.add("journal-ana", "EntryWritten", day=day, words=words)
        source.add("goal-write", "SessionLogged")
    source.add("goal-run", "SessionLogged")
    source.add("goal-run", "SessionLogged")
    source.add("goal-run", "GoalAchieved")

    db = sqlite3.connect(":memory:")
    board, calendar = GoalBoard(), WritingCalendar()
    projector = Projector(db, source, [board, calendar], batch_size=4)
    projector.catch_up()
    print(f"caught up      : {dict(db.execute('SELECT * FROM checkpoints ORDER BY 1'))}")
    for row in db.execute("SELECT * FROM goal_board ORDER BY goal"):
        print(f"goal_board     : {row}")
    for row in db.execute("SELECT * FROM writing_calendar ORDER BY day"):
        print(f"calendar       : {row}")

    source.overlap = 3  # the source sends the last three events again
    source.add("goal-write", "SessionLogged")
    projector.catch_up()
    sessions = dict(db.execute("SELECT goal, sessions FROM goal_board"))
    print(f"re-delivered   : 9-11 sent again with new 12; sessions now {sessions}")

    source.add("journal-ana", "EntryWritten", day="2025-03-05")  # no "words": a poison event
    source.add("goal-write", "SessionLogged")
    try:
        projector.catch_up()
    except ProjectionError as error:
        print(f"poison event   : {error}")
    print(f"checkpoints    : {dict(db.execute('SELECT * FROM checkpoints ORDER BY projection'))}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
