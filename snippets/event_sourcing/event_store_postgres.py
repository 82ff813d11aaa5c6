"""The same event store on PostgreSQL, with LISTEN/NOTIFY wake-ups for subscribers.

The interface is the SQLite store's: ``append`` with an expected version,
``read_stream``, ``read_all``, ``last_position``, ``subscribe``, ``close``.

PostgreSQL runs writers in parallel, which opens the sequence-gap pitfall: a
``bigserial`` position is taken when a row is inserted, not when it commits,
so a reader can see position 8 before a slower transaction commits 7, move
its checkpoint past 7 and never see it. This store hands out positions from
a one-row counter instead. Updating that row locks it until commit, so
appends commit one after the other, in position order, with no gaps.

Set ``DATABASE_URL`` to a database you may write to; the store keeps its two
tables in their own schema (``event_store`` unless you name another).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_STREAM = re.compile(r"[A-Za-z0-9][\w.:-]{0,199}")
_TYPE = re.compile(r"[A-Za-z][\w.]{0,99}")
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, which jsonb refuses
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")


class VersionConflictError(Exception):
    """The stream is not at the version the writer expected; nothing was appended."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, "
                         f"but it is at version {actual}; nothing was appended")
        self.stream, self.expected, self.actual = stream, expected, actual


class CorruptEventError(Exception):
    """A stored event cannot be decoded; the message names where it is."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type name and a JSON object of data."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: where it sits in its stream and in the global order."""

    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    recorded_at: datetime


def encode_batch(stream: str, events: Sequence[NewEvent], expected_version: int) -> list[str]:
    """Check a batch before any write (as the SQLite store does); return JSON texts."""
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


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    bigint      PRIMARY KEY,
    stream      text        NOT NULL,
    version     integer     NOT NULL,
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL
);
INSERT INTO head (position) VALUES (0) ON CONFLICT DO NOTHING;
"""
_COLUMNS = "position, stream, version, type, data, recorded_at"


class PostgresEventStore:
    """The event store in a PostgreSQL schema; safe across threads and processes.

    Args:
        url: a libpq URL; defaults to ``DATABASE_URL``, then a local server.
        schema: the schema that holds the tables (created if missing).
        clock: the time stamped on appended events; by default the server's.
        poll_interval: the longest a subscriber waits if a notification is lost.
    """

    def __init__(self, url: str | None = None, *, schema: str = "event_store",
                 clock: Callable[[], datetime] | None = None,
                 poll_interval: float = 5.0) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"invalid schema name {schema!r}: use a-z, 0-9 and _")
        self.url = url or os.environ.get("DATABASE_URL", DEFAULT_URL)
        self.schema, self._channel = schema, f"{schema}_appended"
        self._clock, self._poll_interval = clock, poll_interval
        self._lock = threading.Lock()
        self._conn = self._connect()
        with self._conn.transaction():  # concurrent first starts must not race on DDL
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema,))
            self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._conn.execute(f"SET search_path TO {schema}")
            self._conn.execute(SCHEMA)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        conn.execute(f"SET search_path TO {self.schema}")
        return conn

    # --8<-- [start:append]
    def append(self, stream: str, events: Sequence[NewEvent], *,
               expected_version: int) -> list[RecordedEvent]:
        """Append a batch if ``stream`` is at ``expected_version`` (0: a new stream).

        Raises:
            VersionConflictError: another writer got there first; nothing stored.
        """
        texts = encode_batch(stream, events, expected_version)
        when = self._clock() if self._clock else None
        with self._lock, self._conn.transaction():
            # Take the next positions; the row stays locked until COMMIT, so
            # appends commit in position order and readers never skip one.
            head, when = self._conn.execute(
                "UPDATE head SET position = position + %s "
                "RETURNING position, coalesce(%s::timestamptz, now())",
                (len(texts), when)).fetchone()
            (actual,) = self._conn.execute(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream = %s",
                (stream,)).fetchone()
            if actual != expected_version:
                raise VersionConflictError(stream, expected_version, actual)
            first = head - len(texts) + 1
            rows = [(first + i, stream, expected_version + i + 1, event.type, text, when)
                    for i, (event, text) in enumerate(zip(events, texts, strict=True))]
            with self._conn.cursor() as cursor:
                cursor.executemany(f"INSERT INTO events ({_COLUMNS}) "
                                   "VALUES (%s, %s, %s, %s, %s::jsonb, %s)", rows)
            self._conn.execute("SELECT pg_notify(%s, %s)", (self._channel, str(head)))
        return [RecordedEvent(p, s, v, t, json.loads(d), w) for p, s, v, t, d, w in rows]
    # --8<-- [end:append]

    def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        return self._select(f"SELECT {_COLUMNS} FROM events WHERE stream = %s "
                            "AND version >= %s ORDER BY version", (stream, from_version))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events of every stream after global position ``after``."""
        return self._select(f"SELECT {_COLUMNS} FROM events WHERE position > %s "
                            "ORDER BY position LIMIT %s", (after, limit))

    def last_position(self) -> int:
        """The global position of the newest committed event (0 for an empty store)."""
        with self._lock:
            return self._conn.execute(
                "SELECT coalesce(max(position), 0) FROM events").fetchone()[0]

    # --8<-- [start:subscribe]
    def subscribe(self, *, after: int = 0, stop: threading.Event | None = None,
                  batch_size: int = 500) -> Iterator[RecordedEvent]:
        """Yield every event after ``after``: first the backlog, then live ones.

        LISTEN comes before the first read, so no append can fall between
        reading the backlog and waiting; a NOTIFY (sent at COMMIT) ends the wait.
        """
        listener = self._connect()
        try:
            listener.execute(f"LISTEN {self._channel}")
            position = after
            while stop is None or not stop.is_set():
                batch = self.read_all(after=position, limit=batch_size)
                for event in batch:
                    yield event
                    position = event.position
                if len(batch) < batch_size:
                    for _ in listener.notifies(timeout=self._poll_interval, stop_after=1):
                        pass
        finally:
            listener.close()
    # --8<-- [end:subscribe]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _select(self, query: str, args: tuple[Any, ...]) -> list[RecordedEvent]:
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        events = []
        for position, stream, version, type_, data, recorded_at in rows:
            if not isinstance(data, dict):
                raise CorruptEventError(
                    f"stream {stream!r} version {version} (position {position}): stored event "
                    f"{type_!r} is corrupt: expected a JSON object, found {type(data).__name__}")
            events.append(RecordedEvent(position, stream, version, type_, data, recorded_at))
        return events


def main() -> None:
    """The Event Store page's scenario on PostgreSQL (in a demo schema, reset each run)."""
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("DROP SCHEMA IF EXISTS coaching_demo CASCADE")
    except psycopg.OperationalError as error:
        print(f"No PostgreSQL at {url}: set DATABASE_URL to a database you may write to.\n"
              f"({str(error).strip().splitlines()[0]})", file=sys.stderr)
        raise SystemExit(1) from None
    def clock() -> datetime:  # a fixed clock keeps the printed output stable
        return datetime(2025, 3, 3, 21, 0, tzinfo=UTC)

    with PostgresEventStore(url, schema="coaching_demo", clock=clock) as store:
        store.append("goal-ana-writing", [NewEvent("GoalSet", {"title": "Write three evenings",
                                                               "target": 3})], expected_version=0)
        store.append("journal-ana", [NewEvent("EntryWritten", {"entry_id": "e1"})],
                     expected_version=0)
        store.append("goal-ana-writing", [NewEvent("SessionLogged", {"entry_id": "e1"})],
                     expected_version=1)
        try:  # a second agent, still holding version 1, logs the same entry
            store.append("goal-ana-writing", [NewEvent("SessionLogged", {"entry_id": "e1"})],
                         expected_version=1)
        except VersionConflictError as error:
            print(f"second agent   : {error}")
        for e in store.read_all():
            print(f"  {e.position}  {e.stream:<16}  v{e.version}  {e.type:<13}  {e.data}")

        head = store.last_position()
        backlog_read = threading.Event()
        writer = threading.Thread(target=lambda: backlog_read.wait(5) and store.append(
            "journal-ana", [NewEvent("EntryWritten", {"entry_id": "e2"})], expected_version=1))
        writer.start()
        for event in store.subscribe(after=head - 1):
            phase = "backlog" if event.position <= head else "live"
            print(f"subscriber     : {phase:<7} #{event.position} {event.stream} {event.type}")
            backlog_read.set()
            if event.position > head:
                break
        writer.join(5)


if __name__ == "__main__":
    main()
