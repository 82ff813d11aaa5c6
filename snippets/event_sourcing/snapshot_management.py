"""Snapshots for an event-sourced goal: taken every N events, versioned, checked before use.

Rebuilding a goal means replaying every event of its stream. A snapshot
stores the state at some version, so a load reads the snapshot and only the
events after it. A snapshot is a cache: losing one costs time, never data.

Each snapshot records the ``SCHEMA`` of the code that wrote it. When the
aggregate changes (a new field, a fixed rule), bump ``SCHEMA``: older
snapshots are then ignored and rebuilt from the events, never read as if the
new code had written them. A snapshot newer than its stream (the events were
restored from an older backup), one that does not decode, and one whose state
lacks a field or holds a non-integer are ignored too. Once a restored stream
grows back past a snapshot's version, the snapshot can no longer be told
apart: delete the snapshots whenever you restore events.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]


class Events(Protocol):
    """What snapshots need from an event store (the Event Store page's stores fit)."""

    def read_stream(self, stream: str, *, from_version: int = 1) -> Sequence[Any]: ...


class EventLog:
    """A cut-down SQLite event store: append with an expected version, read a stream."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                     "stream TEXT, version INTEGER, type TEXT, data TEXT, "
                     "UNIQUE (stream, version))")

    def append(self, stream: str, events: Sequence[NewEvent], *, expected_version: int) -> None:
        with self.conn:  # one transaction; the UNIQUE constraint refuses a lost race
            (actual,) = self.conn.execute("SELECT count(*) FROM events WHERE stream = ?",
                                          (stream,)).fetchone()
            if actual != expected_version:
                raise RuntimeError(f"{stream}: expected version {expected_version}, at {actual}")
            self.conn.executemany(
                "INSERT INTO events (stream, version, type, data) VALUES (?, ?, ?, ?)",
                [(stream, expected_version + i, e.type, json.dumps(e.data))
                 for i, e in enumerate(events, 1)])

    def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        rows = self.conn.execute("SELECT position, stream, version, type, data FROM events "
                                 "WHERE stream = ? AND version >= ? ORDER BY version",
                                 (stream, from_version))
        return [RecordedEvent(p, s, v, t, json.loads(d)) for p, s, v, t, d in rows]


# --8<-- [start:snapshots]
@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of one stream at ``version``, written by code of schema ``schema``."""

    stream: str
    version: int
    schema: int
    state: dict[str, Any]


class SnapshotStore:
    """Latest snapshot per stream, in SQLite; a newer snapshot replaces an older one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("CREATE TABLE IF NOT EXISTS snapshots (stream TEXT PRIMARY KEY, "
                     "version INTEGER NOT NULL, schema INTEGER NOT NULL, state TEXT NOT NULL)")

    def get(self, stream: str) -> Snapshot | None:
        """The stream's snapshot, or None. Raises ValueError if it does not decode."""
        row = self.conn.execute("SELECT version, schema, state FROM snapshots WHERE stream = ?",
                                (stream,)).fetchone()
        return None if row is None else Snapshot(stream, row[0], row[1], json.loads(row[2]))

    def put(self, snapshot: Snapshot, *, replace: bool = False) -> None:
        """Keep ``snapshot`` unless a newer one is stored (``replace`` keeps it anyway)."""
        keep_newer = "" if replace else "WHERE excluded.version > snapshots.version"
        with self.conn:
            self.conn.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE SET "
                "version = excluded.version, schema = excluded.schema, state = excluded.state "
                + keep_newer,
                (snapshot.stream, snapshot.version, snapshot.schema, json.dumps(snapshot.state)))
# --8<-- [end:snapshots]


class GoalProgress:
    """How a goal is going: sessions, minutes, the current and the best daily streak.

    Schema 1 had no best streak. Schema 2 added it, so a schema 1 snapshot
    would say "best streak 0" for a goal with a 30-day streak: it must be rebuilt.
    """

    SCHEMA = 2

    def __init__(self, goal_id: str) -> None:
        self.stream, self.version = f"goal-{goal_id}", 0
        self.sessions = self.minutes = self.streak = self.best_streak = 0
        self.last_day = -1

    def apply(self, event: Any) -> None:
        if event.type == "SessionLogged":
            day = event.data["day"]
            self.streak = self.streak + 1 if day == self.last_day + 1 else \
                self.streak if day == self.last_day else 1
            self.best_streak = max(self.best_streak, self.streak)
            self.sessions += 1
            self.minutes += event.data["minutes"]
            self.last_day = day
        self.version = event.version

    def to_state(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "minutes": self.minutes, "streak": self.streak,
                "best_streak": self.best_streak, "last_day": self.last_day}

    def restore(self, state: dict[str, Any], version: int) -> None:
        """Take the state from a snapshot.

        Raises:
            KeyError: a field is missing.
            TypeError: a field is not a whole number (``True`` and ``3.0`` are not).
        """
        fields = ("sessions", "minutes", "streak", "best_streak", "last_day")
        values = [state[name] for name in fields]
        for name, value in zip(fields, values, strict=True):
            if type(value) is not int:
                raise TypeError(f"{name!r} = {value!r}, not a whole number")
        self.sessions, self.minutes, self.streak, self.best_streak, self.last_day = values
        self.version = version

    def __str__(self) -> str:
        return (f"v{self.version}: {self.sessions} sessions, {self.minutes} min, "
                f"streak {self.streak}, best {self.best_streak}")


# --8<-- [start:repository]
@dataclass(frozen=True, slots=True)
class Loaded:
    """A rehydrated goal and how it was built."""

    goal: GoalProgress
    snapshot_version: int | None  # the snapshot used, if any
    replayed: int  # events applied on top of it
    ignored: str = ""  # why a snapshot was not used


class Repository:
    """Loads goals from a snapshot plus the events after it; snapshots every ``every``.

    Args:
        events: an event store with ``read_stream(stream, from_version=)``.
        snapshots: where snapshots live; ``None`` always replays everything.
        every: take a snapshot when a load replayed at least this many events.
    """

    def __init__(self, events: Events, snapshots: SnapshotStore | None, *,
                 every: int = 100) -> None:
        self.events, self.snapshots, self.every = events, snapshots, every

    def load(self, goal_id: str) -> Loaded:
        goal, snapshot, ignored = GoalProgress(goal_id), None, ""
        if self.snapshots is not None:
            try:
                snapshot = self.snapshots.get(goal.stream)
            except ValueError as error:
                ignored = f"does not decode: {error}"
        if snapshot is not None and snapshot.schema != GoalProgress.SCHEMA:
            snapshot, ignored = None, f"schema {snapshot.schema}, code is at {GoalProgress.SCHEMA}"
        events: Sequence[Any] = []
        if snapshot is not None:  # re-read its last event: the stream must reach it
            events = self.events.read_stream(goal.stream, from_version=snapshot.version)
            if not events or events[0].version != snapshot.version:
                snapshot, ignored = None, f"v{snapshot.version} is past the stream's end"
            else:
                try:
                    goal.restore(snapshot.state, snapshot.version)
                    events = events[1:]
                except KeyError as error:
                    snapshot, ignored = None, f"state lacks {error}"
                except TypeError as error:
                    snapshot, ignored = None, f"state has {error}"
        if snapshot is None:
            events = self.events.read_stream(goal.stream)
        for event in events:
            goal.apply(event)
        if self.snapshots is not None and goal.version and (len(events) >= self.every or ignored):
            self.snapshots.put(Snapshot(goal.stream, goal.version, GoalProgress.SCHEMA,
                                        goal.to_state()), replace=snapshot is None)
        return Loaded(goal, snapshot.version if snapshot else None, len(events), ignored)
# --8<-- [end:repository]


# --8<-- [start:demo]
def main() -> None:
    """250 sessions, snapshots every 100; then a stale, a future and a broken snapshot."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "coaching.db")
        events, snapshots = EventLog(conn), SnapshotStore(conn)
        repo = Repository(events, snapshots, every=100)
        rest_days = {6, 13, 14, 40, 41, 90, 181}
        sessions = [NewEvent("SessionLogged", {"day": day, "minutes": 20 + day % 3 * 10})
                    for day in range(260) if day not in rest_days][:250]

        def show(label: str) -> None:
            loaded = repo.load("run")
            used = f"snapshot v{loaded.snapshot_version}" if loaded.snapshot_version else "events"
            print(f"{label:<21} {used:<15} + {loaded.replayed:>3} replayed -> {loaded.goal}")
            if loaded.ignored:
                print(f"{'':<21} (snapshot ignored: {loaded.ignored})")

        events.append("goal-run", sessions[:230], expected_version=0)
        show("first load")  # replays 230 >= 100: takes a snapshot
        events.append("goal-run", sessions[230:], expected_version=230)
        show("20 sessions later")
        snapshots.put(Snapshot("goal-run", 250, 1, {"sessions": 250, "minutes": 7490}))
        show("old-code snapshot")  # schema 1 had no best streak
        show("after the rebuild")
        snapshots.put(Snapshot("goal-run", 400, 2, snapshots.get("goal-run").state))
        show("snapshot from future")
        with conn:
            conn.execute("UPDATE snapshots SET state = '{\"sessions\": 2' "  # cut short
                         "WHERE stream = 'goal-run'")
        show("garbled snapshot")
        conn.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
