"""Rebuild a read model from position zero into a new table, then swap it in at once.

Readers query a view, ``goal_board``, never a table. Version 1 of the
projection fills ``goal_board_v1`` and the view points at it. When version 2
ships (a new column, a fixed rule), it is built from the first event into
``goal_board_v2`` while version 1 stays live and keeps up with new events.
When version 2 has caught up, one transaction applies its last events and
points the view at it. Readers see the complete old table or the complete new
one, never a half-built one, and never wait.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    stream: str
    type: str
    data: dict[str, Any]


class Source(Protocol):
    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


class Projection(Protocol):
    """One version of a read model: how to create its table and apply events to it."""

    version: int

    def create(self, db: sqlite3.Connection, table: str) -> None: ...
    def apply(self, db: sqlite3.Connection, table: str, event: Any) -> None: ...


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class GoalBoardV1:
    """Version 1: title and sessions."""

    version = 1

    def create(self, db: sqlite3.Connection, table: str) -> None:
        db.execute(f"CREATE TABLE {table} (goal TEXT PRIMARY KEY, title TEXT, sessions INTEGER)")

    def apply(self, db: sqlite3.Connection, table: str, event: Any) -> None:
        if event.type == "GoalSet":
            db.execute(f"INSERT INTO {table} VALUES (?, ?, 0)", (event.stream, event.data["title"]))
        elif event.type == "SessionLogged":
            db.execute(f"UPDATE {table} SET sessions = sessions + 1 WHERE goal = ?",
                       (event.stream,))


class GoalBoardV2:
    """Version 2 adds the target and the percentage done, which version 1 never kept."""

    version = 2

    def create(self, db: sqlite3.Connection, table: str) -> None:
        db.execute(f"CREATE TABLE {table} (goal TEXT PRIMARY KEY, title TEXT, sessions INTEGER, "
                   "target INTEGER, percent INTEGER)")

    def apply(self, db: sqlite3.Connection, table: str, event: Any) -> None:
        if event.type == "GoalSet":
            db.execute(f"INSERT INTO {table} VALUES (?, ?, 0, ?, 0)",
                       (event.stream, event.data["title"], event.data["target"]))
        elif event.type == "SessionLogged":
            db.execute(f"UPDATE {table} SET sessions = sessions + 1, "
                       "percent = min(100, 100 * (sessions + 1) / target) WHERE goal = ?",
                       (event.stream,))


# --8<-- [start:read_model]
class ReadModel:
    """A read model behind a view, with versions built side by side.

    Args:
        db: the SQLite database of the read model (its tables, view and registry).
        source: the event store (anything with ``read_all(after=, limit=)``).
        name: the view readers query; tables are ``<name>_v<version>``.
    """

    def __init__(self, db: sqlite3.Connection, source: Source, name: str, *,
                 batch_size: int = 100) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid read model name {name!r}: use a-z, 0-9 and _")
        db.isolation_level = None
        self.db, self.source, self.name, self.batch_size = db, source, name, batch_size
        self.versions: dict[int, Projection] = {}
        db.execute("CREATE TABLE IF NOT EXISTS read_model_versions (name TEXT, version INTEGER, "
                   "position INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (name, version))")

    def deploy(self, projection: Projection) -> None:
        """Create the version's empty table; it starts building from position 0."""
        with transaction(self.db):
            projection.create(self.db, self._table(projection.version))
            self.db.execute("INSERT INTO read_model_versions VALUES (?, ?, 0, 'building')",
                            (self.name, projection.version))
        self.versions[projection.version] = projection

    def run_once(self, version: int) -> int:
        """Apply one batch to one version, with its position, in one transaction."""
        with transaction(self.db):
            return self._apply_batch(version)

    def catch_up(self) -> None:
        """Bring every deployed version up to the end of the source."""
        for version in self.versions:
            while self.run_once(version):
                pass

    def swap(self, version: int) -> None:
        """Catch ``version`` up and point the view at it, in one transaction."""
        with transaction(self.db):
            while self._apply_batch(version):
                pass  # no writer can append to the read side meanwhile: we hold its lock
            self.db.execute(f"DROP VIEW IF EXISTS {self.name}")
            self.db.execute(f"CREATE VIEW {self.name} AS SELECT * FROM {self._table(version)}")
            for old, in self.db.execute("SELECT version FROM read_model_versions WHERE name = ? "
                                        "AND state = 'live'", (self.name,)).fetchall():
                self.db.execute(f"DROP TABLE {self._table(old)}")
                self.versions.pop(old, None)
            self.db.execute("UPDATE read_model_versions SET state = CASE version WHEN ? THEN "
                            "'live' ELSE 'retired' END WHERE name = ? AND state != 'retired'",
                            (version, self.name))

    def status(self) -> list[tuple[int, int, str]]:
        """(version, position, state) of every version of this read model."""
        return self.db.execute("SELECT version, position, state FROM read_model_versions "
                               "WHERE name = ? ORDER BY version", (self.name,)).fetchall()

    def _apply_batch(self, version: int) -> int:
        projection, table = self.versions[version], self._table(version)
        (position,) = self.db.execute("SELECT position FROM read_model_versions WHERE name = ? "
                                      "AND version = ?", (self.name, version)).fetchone()
        batch = [e for e in self.source.read_all(after=position, limit=self.batch_size)
                 if e.position > position]
        for event in batch:
            projection.apply(self.db, table, event)
        if batch:
            self.db.execute("UPDATE read_model_versions SET position = ? WHERE name = ? AND "
                            "version = ?", (batch[-1].position, self.name, version))
        return len(batch)

    def _table(self, version: int) -> str:
        return f"{self.name}_v{version}"
# --8<-- [end:read_model]


class MemorySource:
    """A list of events with ``read_all``, standing in for the event store in main()."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, stream: str, type_: str, **data: Any) -> None:
        self.events.append(RecordedEvent(len(self.events) + 1, stream, type_, data))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return self.events[after:after + limit]


# --8<-- [start:demo]
def main() -> None:
    """Version 1 is live; version 2 is rebuilt beside it while events keep coming."""
    source = MemorySource()
    for goal, title, target in [("run", "Run 5 km", 4), ("write", "Write daily", 10)]:
        source.add(f"goal-{goal}", "GoalSet", title=title, target=target)
    for _ in range(3):
        source.add("goal-run", "SessionLogged")
        source.add("goal-write", "SessionLogged")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "read.db"
        writer, reader = sqlite3.connect(path), sqlite3.connect(path, isolation_level=None)
        board = ReadModel(writer, source, "goal_board", batch_size=3)
        board.deploy(GoalBoardV1())
        board.swap(1)
        query = "SELECT * FROM goal_board ORDER BY goal"
        print(f"v1 live        : {reader.execute(query).fetchall()}")

        board.deploy(GoalBoardV2())  # the new version starts from position 0
        board.run_once(2)
        source.add("goal-run", "SessionLogged")  # life goes on during the rebuild
        board.run_once(1)
        board.run_once(2)
        print(f"rebuilding     : {board.status()}")
        print(f"readers see    : {reader.execute(query).fetchall()}")

        source.add("goal-write", "SessionLogged")
        board.swap(2)  # the last events and the switch, in one transaction
        print(f"v2 swapped in  : {reader.execute(query).fetchall()}")
        print(f"versions       : {board.status()}")
        writer.close()
        reader.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
