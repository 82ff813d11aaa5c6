"""An event store on SQLite: streams, optimistic concurrency, a global order, subscriptions.

Every aggregate (a goal, a journal) owns a stream of events numbered 1, 2,
3... (its version). ``append`` adds a batch atomically if the stream is still
at the version the caller expects, and otherwise stores nothing and raises
:class:`VersionConflictError`. Every event also gets a global position, so a
reader can follow all streams in one order and resume from where it stopped.

SQLite lets one writer in at a time (``BEGIN IMMEDIATE``), so positions are
handed out in commit order and a reader of the global order can never skip an
event that committed late. The ``Goal`` at the end is rebuilt from its events.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

_STREAM = re.compile(r"[A-Za-z0-9][\w.:-]{0,199}")
_TYPE = re.compile(r"[A-Za-z][\w.]{0,99}")
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, which jsonb refuses


class VersionConflictError(Exception):
    """The stream is not at the version the writer expected; nothing was appended."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, "
                         f"but it is at version {actual}; nothing was appended")
        self.stream, self.expected, self.actual = stream, expected, actual


class CorruptEventError(Exception):
    """A stored event cannot be decoded; the message names where it is."""


class UnknownEventTypeError(Exception):
    """An aggregate met an event type it does not know; the message names where."""


# --8<-- [start:interface]
@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type name and a JSON object of data."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: where it sits in its stream and in the global order."""

    position: int  # global, 1, 2, 3... across all streams, in commit order
    stream: str
    version: int  # within the stream, 1, 2, 3...
    type: str
    data: dict[str, Any]
    recorded_at: datetime


class EventStore(Protocol):
    """The whole interface; the SQLite and PostgreSQL stores both provide it."""

    def append(self, stream: str, events: Sequence[NewEvent], *,
               expected_version: int) -> list[RecordedEvent]: ...
    def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]: ...
    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...
    def last_position(self) -> int: ...
    def subscribe(self, *, after: int = 0,
                  stop: threading.Event | None = None) -> Iterator[RecordedEvent]: ...
    def close(self) -> None: ...
# --8<-- [end:interface]


def encode_batch(stream: str, events: Sequence[NewEvent], expected_version: int) -> list[str]:
    """Check a batch before any write; return each event's data as JSON text.

    Raises:
        ValueError: a bad stream name, expected version, type name or empty batch.
        TypeError: an item is not a NewEvent, or its data does not survive JSON.
    """
    if not isinstance(stream, str) or not _STREAM.fullmatch(stream):
        raise ValueError(f"invalid stream name {stream!r}: use letters, digits and _ . : -")
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) \
            or expected_version < 0:
        raise ValueError(f"stream {stream!r}: expected_version must be an int >= 0, "
                         f"not {expected_version!r}")
    if not events:
        raise ValueError(f"stream {stream!r}: no events to append")
    encoded = []
    for index, event in enumerate(events):
        where = f"stream {stream!r}, event {index}"
        if not isinstance(event, NewEvent):
            raise TypeError(f"{where}: expected a NewEvent, not {type(event).__name__}")
        if not isinstance(event.type, str) or not _TYPE.fullmatch(event.type):
            raise ValueError(f"{where}: invalid event type {event.type!r}")
        try:
            text = json.dumps(event.data, allow_nan=False, ensure_ascii=False,
                              separators=(",", ":"))
            text.encode("utf-8")  # refuses lone surrogates
        except (TypeError, ValueError) as error:
            raise TypeError(f"{where} ({event.type}): data is not JSON: {error}") from None
        if not isinstance(event.data, dict) or json.loads(text) != event.data \
                or _NUL.search(text):
            raise TypeError(f"{where} ({event.type}): data must be a JSON object that "
                            "survives a round trip (str keys, lists not tuples, no NUL)")
        encoded.append(text)
    return encoded


def decode(position: int, stream: str, version: int, type_: str, data: str,
           recorded_at: str) -> RecordedEvent:
    """Turn a stored row back into a RecordedEvent, or say precisely what is wrong."""
    try:
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, found {type(value).__name__}")
        when = datetime.fromisoformat(recorded_at)
    except (TypeError, ValueError) as error:
        raise CorruptEventError(f"stream {stream!r} version {version} (position {position}): "
                                f"stored event {type_!r} is corrupt: {error}") from None
    return RecordedEvent(position, stream, version, type_, value, when)


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    UNIQUE (stream, version)
);
"""
_COLUMNS = "position, stream, version, type, data, recorded_at"


LOCK_TIMEOUT = 30.0  # seconds a connection waits for another's lock


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, where readers never block the writer.

    The switch needs the whole file to itself. While another connection is in
    the middle of a write (several stores opening a new file at once, each
    creating the schema), SQLite refuses it at once with "database is locked",
    without waiting out the busy timeout, since waiting could deadlock. So the
    switch is retried until it succeeds or LOCK_TIMEOUT passes.
    """
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteEventStore:
    """The event store in one SQLite file (WAL mode); safe across threads and processes.

    Args:
        path: the database file (created if missing).
        clock: returns the time stamped on appended events (UTC by default).
        poll_interval: how often a subscriber looks for events appended by
            other processes; appends through this object wake it at once.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None,
                 poll_interval: float = 0.1) -> None:
        self._conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None,
                                     check_same_thread=False)
        _switch_to_wal(self._conn)
        self._conn.executescript(SCHEMA)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._appended = threading.Condition()
        self._appends = 0

    # --8<-- [start:append]
    def append(self, stream: str, events: Sequence[NewEvent], *,
               expected_version: int) -> list[RecordedEvent]:
        """Append a batch if ``stream`` is at ``expected_version`` (0: a new stream).

        All or nothing: on a conflict, bad input or a crash, no event of the
        batch is stored. Returns the events as recorded, with their positions.

        Raises:
            VersionConflictError: another writer got there first.
        """
        texts = encode_batch(stream, events, expected_version)
        when = self._clock()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # the write lock, before reading
            try:
                (actual,) = self._conn.execute(
                    "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?",
                    (stream,)).fetchone()
                if actual != expected_version:
                    raise VersionConflictError(stream, expected_version, actual)
                (head,) = self._conn.execute(
                    "SELECT coalesce(max(position), 0) FROM events").fetchone()
                rows = [(head + i, stream, expected_version + i, event.type, text, when.isoformat())
                        for i, (event, text) in enumerate(zip(events, texts, strict=True), 1)]
                self._conn.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
                                       rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        with self._appended:
            self._appends += 1
            self._appended.notify_all()
        return [decode(*row) for row in rows]
    # --8<-- [end:append]

    def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        return self._select(f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version >= ? "
                            "ORDER BY version", (stream, from_version))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events of every stream after global position ``after``."""
        return self._select(f"SELECT {_COLUMNS} FROM events WHERE position > ? "
                            "ORDER BY position LIMIT ?", (after, limit))

    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        with self._lock:
            return self._conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]

    # --8<-- [start:subscribe]
    def subscribe(self, *, after: int = 0, stop: threading.Event | None = None,
                  batch_size: int = 500) -> Iterator[RecordedEvent]:
        """Yield every event after ``after``: first the backlog, then live ones.

        Runs until ``stop`` is set or the caller stops iterating. Waits are
        cut short by appends through this object, else last ``poll_interval``.
        """
        position = after
        while stop is None or not stop.is_set():
            with self._appended:
                seen = self._appends
            batch = self.read_all(after=position, limit=batch_size)
            for event in batch:
                yield event
                position = event.position
            if len(batch) < batch_size:  # caught up: wait for news
                with self._appended:
                    self._appended.wait_for(lambda seen=seen: self._appends != seen,
                                            timeout=self._poll_interval)
    # --8<-- [end:subscribe]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _select(self, query: str, args: tuple[Any, ...]) -> list[RecordedEvent]:
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        return [decode(*row) for row in rows]


# --8<-- [start:aggregate]
class GoalRuleError(Exception):
    """A command that the goal refuses, with the reason."""


class Goal:
    """A coaching goal, rebuilt from its events; commands record new ones.

    Rules: a goal is set once; a session counts once per journal entry; the
    goal is achieved when the target is reached, and then takes no sessions.
    """

    def __init__(self, goal_id: str) -> None:
        self.stream = f"goal-{goal_id}"
        self.version = 0  # events applied so far; the expected version on save
        self.title, self.target, self.achieved = "", 0, False
        self.entries: list[str] = []
        self.pending: list[NewEvent] = []

    @classmethod
    def load(cls, store: EventStore, goal_id: str) -> Goal:
        """Rehydrate: replay the stream's events in order."""
        goal = cls(goal_id)
        for event in store.read_stream(goal.stream):
            if not goal._apply(event.type, event.data):
                raise UnknownEventTypeError(
                    f"stream {event.stream!r} version {event.version} (position "
                    f"{event.position}): unknown event type {event.type!r} for Goal")
            goal.version = event.version
        return goal

    def set(self, title: str, target: int) -> None:
        if self.title:
            raise GoalRuleError(f"{self.stream} is already set: {self.title!r}")
        if target < 1:
            raise GoalRuleError(f"target must be at least 1 session, not {target}")
        self._record("GoalSet", {"title": title, "target": target})

    def log_session(self, entry_id: str) -> None:
        if entry_id in self.entries:
            raise GoalRuleError(f"entry {entry_id} is already counted for {self.stream}")
        if not self.title or self.achieved:
            state = "achieved" if self.achieved else "not set"
            raise GoalRuleError(f"{self.stream} is {state}: it takes no more sessions")
        self._record("SessionLogged", {"entry_id": entry_id})
        if len(self.entries) == self.target:
            self._record("GoalAchieved", {"sessions": len(self.entries)})

    def save(self, store: EventStore) -> list[RecordedEvent]:
        """Append the pending events, expecting the version this goal was loaded at."""
        recorded = store.append(self.stream, self.pending,
                                expected_version=self.version - len(self.pending))
        self.pending = []
        return recorded

    def _record(self, type_: str, data: dict[str, Any]) -> None:
        self._apply(type_, data)
        self.version += 1
        self.pending.append(NewEvent(type_, data))

    def _apply(self, type_: str, data: dict[str, Any]) -> bool:
        """Change state for one event; False if the type is unknown."""
        match type_:
            case "GoalSet":
                self.title, self.target = data["title"], data["target"]
            case "SessionLogged":
                self.entries.append(data["entry_id"])
            case "GoalAchieved":
                self.achieved = True
            case _:
                return False
        return True
# --8<-- [end:aggregate]


# --8<-- [start:demo]
def main() -> None:
    """Two coaching agents react to the same entry at once; then read and subscribe."""
    ticks = itertools.count()

    def clock() -> datetime:  # a fixed clock keeps the printed output stable
        return datetime(2025, 3, 3, 21, 0, tzinfo=UTC) + timedelta(minutes=next(ticks))

    with tempfile.TemporaryDirectory() as tmp, \
            SQLiteEventStore(Path(tmp) / "coaching.db", clock=clock) as store:
        goal = Goal("ana-writing")
        goal.set("Write three evenings this week", target=3)
        goal.save(store)
        for version, entry in enumerate(["e1", "e2", "e3"]):
            store.append("journal-ana", [NewEvent("EntryWritten", {"entry_id": entry})],
                         expected_version=version)
            if entry != "e3":
                goal.log_session(entry)
                goal.save(store)

        first, second = Goal.load(store, "ana-writing"), Goal.load(store, "ana-writing")
        first.log_session("e3")  # reaches the target: two events in one batch
        second.log_session("e3")  # the same entry, seen by another agent
        first.save(store)
        try:
            second.save(store)
        except VersionConflictError as error:
            print(f"second agent   : {error}")
        try:
            Goal.load(store, "ana-writing").log_session("e3")  # retry on fresh state
        except GoalRuleError as error:
            print(f"its retry      : refused, {error}")

        goal = Goal.load(store, "ana-writing")
        print(f"rehydrated     : {goal.stream} v{goal.version}, {len(goal.entries)}/"
              f"{goal.target} sessions, achieved={goal.achieved}")
        print("global order   :")
        for e in store.read_all():
            print(f"  {e.position}  {e.stream:<16}  v{e.version}  {e.type:<13}  {e.data}")

        head = store.last_position()
        backlog_read = threading.Event()
        writer = threading.Thread(target=lambda: backlog_read.wait(5) and store.append(
            "journal-ana", [NewEvent("EntryWritten", {"entry_id": "e4"})], expected_version=3))
        writer.start()
        for event in store.subscribe(after=head - 2):
            phase = "backlog" if event.position <= head else "live"
            print(f"subscriber     : {phase:<7} #{event.position} {event.stream} {event.type}")
            backlog_read.set()  # let the writer append while we wait
            if event.position > head:
                break
        writer.join(5)


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
