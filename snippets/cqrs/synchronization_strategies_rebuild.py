"""Rebuild a read model from the first event while the old one keeps serving.

Each version of the read model lives in its own database file with its own
checkpoint. The live version serves every query and keeps up with new
events. A new version is deployed beside it and catches up from position 0
in batches, sharing the projector with the live one. Only when it has
reached the live version's position is it promoted, by switching one
reference under a lock; the old file is then closed and deleted.

Promotion refuses a version that is behind the live one
(:class:`RebuildBehindError`): readers holding a read-your-writes token
would otherwise see the state go back in time. Queries return the version
and position they were answered from.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol


class RebuildBehindError(RuntimeError):
    """A version cannot be promoted: it has not reached the live version's position."""


class StaleReadError(TimeoutError):
    """The live read model did not reach the caller's position in time."""


class EventLog:
    """An append-only log of journal entries with global positions (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                        "data TEXT NOT NULL)")
        self.lock = threading.Lock()

    def append(self, **data: Any) -> int:
        with self.lock:
            cursor = self.db.execute("INSERT INTO events (data) VALUES (?)", (json.dumps(data),))
            return cursor.lastrowid

    def read_all(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        with self.lock:
            rows = self.db.execute("SELECT position, data FROM events WHERE position > ? "
                                   "ORDER BY position LIMIT ?", (after, limit)).fetchall()
        return [(position, json.loads(data)) for position, data in rows]


class Projection(Protocol):
    columns: str

    def create(self, db: sqlite3.Connection) -> None: ...
    def apply(self, db: sqlite3.Connection, data: dict[str, Any]) -> None: ...


# --8<-- [start:versions]
class SummaryV1:
    """Entries and words per user."""

    columns = "entries, words"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE summary (user_id TEXT PRIMARY KEY, entries INT, words INT)")

    def apply(self, db: sqlite3.Connection, data: dict[str, Any]) -> None:
        db.execute("INSERT INTO summary VALUES (:user, 1, :words) ON CONFLICT (user_id) DO "
                   "UPDATE SET entries = entries + 1, words = words + :words", data)


class SummaryV2:
    """Version 2 adds the average mood, which needs every entry ever written."""

    columns = "entries, words, round(1.0 * mood_total / entries, 2) AS mood"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE summary (user_id TEXT PRIMARY KEY, entries INT, words INT, "
                   "mood_total INT)")

    def apply(self, db: sqlite3.Connection, data: dict[str, Any]) -> None:
        db.execute("INSERT INTO summary VALUES (:user, 1, :words, :mood) ON CONFLICT (user_id) "
                   "DO UPDATE SET entries = entries + 1, words = words + :words, "
                   "mood_total = mood_total + :mood", data)
# --8<-- [end:versions]


class Version:
    """One version of the read model: its own file, tables and checkpoint."""

    def __init__(self, directory: Path, number: int, projection: Projection) -> None:
        self.number, self.projection = number, projection
        self.path = directory / f"summary_v{number}.db"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.lock, self.closed = threading.Lock(), False
        self.db.execute("CREATE TABLE checkpoint (position INTEGER NOT NULL)")
        self.db.execute("INSERT INTO checkpoint VALUES (0)")
        projection.create(self.db)

    def position(self) -> int:
        with self.lock:
            return self.db.execute("SELECT position FROM checkpoint").fetchone()[0]

    def catch_up_once(self, log: EventLog, batch_size: int) -> int:
        """Apply one batch and move the checkpoint, in one transaction."""
        with self.lock:
            if self.closed:  # retired while the projector was on its way here
                return 0
            self.db.execute("BEGIN IMMEDIATE")
            try:
                (position,) = self.db.execute("SELECT position FROM checkpoint").fetchone()
                batch = log.read_all(position, batch_size)
                for _, data in batch:
                    self.projection.apply(self.db, data)
                if batch:
                    self.db.execute("UPDATE checkpoint SET position = ?", (batch[-1][0],))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return len(batch)

    def query(self, user: str) -> tuple[int, dict[str, Any] | None]:
        with self.lock:
            (position,) = self.db.execute("SELECT position FROM checkpoint").fetchone()
            cursor = self.db.execute(f"SELECT {self.projection.columns} FROM summary "
                                     "WHERE user_id = ?", (user,))
            row = cursor.fetchone()
        names = [column[0] for column in cursor.description]
        return position, None if row is None else dict(zip(names, row, strict=True))

    def delete(self) -> None:
        with self.lock:  # waits for a batch in flight on this version
            self.closed = True
            self.db.close()
        self.path.unlink()


# --8<-- [start:read_side]
class ReadSide:
    """The versions of one read model, the live one, and the switch between them."""

    def __init__(self, log: EventLog, directory: Path, projection: Projection, *,
                 batch_size: int = 100) -> None:
        self.log, self.directory, self.batch_size = log, directory, batch_size
        self.versions = {1: Version(directory, 1, projection)}
        self.live = self.versions[1]
        self._switch = threading.Condition()

    def deploy(self, number: int, projection: Projection) -> None:
        """Add a version beside the live one; it starts from position 0."""
        if number in self.versions:
            raise ValueError(f"version {number} is already deployed")
        self.versions[number] = Version(self.directory, number, projection)

    def catch_up(self) -> int:
        """One batch for every deployed version; return the events applied."""
        applied = sum(v.catch_up_once(self.log, self.batch_size)
                      for v in list(self.versions.values()))
        with self._switch:
            self._switch.notify_all()
        return applied

    def promote(self, number: int) -> None:
        """Make ``number`` the live version, if it is not behind the live one."""
        candidate = self.versions[number]
        with self._switch:
            if (new := candidate.position()) < (old := self.live.position()):
                raise RebuildBehindError(
                    f"version {number} is at position {new}, behind live version "
                    f"{self.live.number} at {old}; promoting it would take readers back in time")
            retired, self.live = self.live, candidate
            self._switch.notify_all()
        del self.versions[retired.number]
        retired.delete()

    def query(self, user: str, *, at_least: int = 0, timeout: float = 2.0) -> dict[str, Any]:
        """The user's summary from the live version, once it includes ``at_least``."""
        deadline = time.monotonic() + timeout
        with self._switch:
            while True:
                live = self.live
                position, row = live.query(user)
                if position >= at_least:
                    break
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise StaleReadError(f"live version {live.number} is at position "
                                         f"{position}, your write is at {at_least}")
                self._switch.wait(remaining)
        return {"user": user, **(row or {}), "version": live.number, "as_of": position}

    def status(self) -> list[tuple[int, int, str]]:
        return [(n, v.position(), "live" if v is self.live else "building")
                for n, v in sorted(self.versions.items())]
# --8<-- [end:read_side]


# --8<-- [start:demo]
def main() -> None:
    """Version 2 is rebuilt from scratch while version 1 serves and events keep coming."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        log = EventLog(directory / "events.db")
        for i, (words, mood) in enumerate([(120, 4), (300, 2), (80, 3), (200, 5)], 1):
            log.append(user="ana", entry_id=f"e{i}", words=words, mood=mood)
        side = ReadSide(log, directory, SummaryV1(), batch_size=2)
        while side.catch_up():
            pass
        print(f"v1 live        : {side.query('ana')}")

        side.deploy(2, SummaryV2())
        side.catch_up()  # one batch each: v1 has nothing new, v2 starts from 0
        token = log.append(user="ana", entry_id="e5", words=150, mood=4)
        side.catch_up()
        print(f"rebuilding     : {side.status()}, newest event {token}")
        print(f"readers get    : {side.query('ana', at_least=token)}")
        try:
            side.promote(2)
        except RebuildBehindError as error:
            print(f"promote early  : {error}")
        while side.catch_up():
            pass
        side.promote(2)
        print(f"promoted       : {side.query('ana', at_least=token)}")
        print(f"files left     : {sorted(p.name for p in directory.glob('*.db'))}")
        side.live.db.close()
        log.db.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
