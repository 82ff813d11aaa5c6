"""In-transaction or asynchronous projection, measured lag, and read-your-writes.

One journal app, two ways to keep its read models in step with its events:

* ``mode="inline"``: the command appends its event and updates every read
  model in the same transaction. A read right after the write sees it; a
  projection that fails refuses the write; every write pays for every
  read model.
* ``mode="async"``: the command only appends. A projector thread follows
  the log with a catch-up subscription (the backlog after its checkpoint,
  then each new event as it commits) and applies batches, each with its
  checkpoint in the same transaction. Writes are cheaper and a broken read
  model refuses no write, but reads lag: :meth:`JournalApp.lag` measures by
  how much. In the events' file, a command waits for the batch in flight,
  and the projector lets waiting commands in before its next batch. The
  read models may also live in another file (``read_path``): the projector
  then reads the log through a connection of its own, which in WAL mode
  takes no lock the writer waits for, and writes only to the read models'
  file, so neither the writer nor the projector waits for the other.

Every write returns its global position, a token. ``summary(user,
at_least=token)`` waits until the read models have reached it and raises
:class:`StaleReadError`, naming both positions, if they do not in time.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    stream: str
    data: dict[str, Any]
    recorded_at: float


@dataclass(frozen=True, slots=True)
class Summary:
    user: str
    entries: int
    words: int
    last_entry: str | None
    as_of: int  # the position the read models had reached


@dataclass(frozen=True, slots=True)
class Lag:
    events: int  # appended, not yet applied
    seconds: float  # age of the oldest event not yet applied; 0 when caught up


class StaleReadError(TimeoutError):
    """The read models did not reach the position the caller asked for in time."""


class ProjectionError(RuntimeError):
    """A projection failed on an event; its batch (or its command) was rolled back."""


Projection = Callable[[sqlite3.Connection, Event], None]

LOG = """
CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
    data TEXT NOT NULL, recorded_at REAL NOT NULL);
"""
READ_MODELS = """
CREATE TABLE IF NOT EXISTS summary (user_id TEXT PRIMARY KEY, entries INTEGER NOT NULL,
    words INTEGER NOT NULL, last_entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (position INTEGER NOT NULL);
INSERT INTO checkpoint SELECT 0 WHERE NOT EXISTS (SELECT * FROM checkpoint);
"""


def summarize(db: sqlite3.Connection, event: Event) -> None:
    """The summary read model: one row per user."""
    db.execute("INSERT INTO summary VALUES (:user, 1, :words, :entry_id) ON CONFLICT (user_id) "
               "DO UPDATE SET entries = entries + 1, words = words + excluded.words, "
               "last_entry = excluded.last_entry", event.data)


LOCK_TIMEOUT = 30.0  # seconds a connection waits for another's lock


def connect(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit and WAL mode, where readers never block the writer.

    The switch to WAL needs the file to itself: while another connection is in
    the middle of a write, SQLite refuses it at once with "database is locked"
    instead of waiting out the busy timeout, so the switch is retried until it
    succeeds or LOCK_TIMEOUT passes.
    """
    db = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None,
                         check_same_thread=False)
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return db
        except sqlite3.DatabaseError as error:  # also: not a database at all
            if "locked" not in str(error) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)


class JournalApp:
    """Commands, a projector and queries over one SQLite file.

    Args:
        path: the database file of the events (and of the read models, by default).
        mode: ``"inline"`` or ``"async"`` (see the module docstring).
        read_path: async mode only: keep the read models and their checkpoint in
            this other file, so that the projector and the writer never wait for
            each other's write lock.
        projections: the read models' update functions, in order.
        batch_size: events per projector transaction (async mode).
        poll_interval: how often waits look for progress made by other processes.
        clock: stamps ``recorded_at`` and measures lag (seconds).
    """

    def __init__(self, path: str | Path, *, mode: str = "async",
                 projections: Sequence[Projection] = (summarize,), batch_size: int = 100,
                 poll_interval: float = 0.05, clock: Callable[[], float] = time.time,
                 read_path: str | Path | None = None) -> None:
        if mode not in ("inline", "async"):
            raise ValueError(f"mode must be 'inline' or 'async', not {mode!r}")
        if mode == "inline" and read_path is not None:
            raise ValueError("inline projection needs the read models in the events' file")
        self.mode, self.projections, self.batch_size = mode, list(projections), batch_size
        self.poll_interval, self.clock = poll_interval, clock
        self._writer = connect(path)
        self._writer.executescript(LOG)
        self._events = connect(path)  # the projector reads the log here, and never writes
        self._projector, self._reader = connect(read_path or path), connect(read_path or path)
        self._projector.executescript(READ_MODELS)
        self._log, self._shares_file = "events", read_path is None
        if read_path is not None:  # queries only read: attaching the log locks nothing
            self._reader.execute("ATTACH DATABASE ? AS log", (str(path),))
            self._log = "log.events"
        self._write_lock, self._read_lock = threading.Lock(), threading.Lock()
        self._changed = threading.Condition()  # an append or a checkpoint move, in-process
        self._appends = 0
        self._writers = 0  # commands waiting for or holding the log's write lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: Exception | None = None  # why the projector thread stopped
        self.on_batch: Callable[[list[Event], float], None] | None = None

    # --8<-- [start:command]
    def write_entry(self, user: str, entry_id: str, words: int) -> int:
        """Append an EntryWritten event; return its position (the read-your-writes token)."""
        if not isinstance(words, int) or isinstance(words, bool) or words < 0:
            raise ValueError(f"words must be a whole number >= 0, not {words!r}")
        data = {"user": user, "entry_id": entry_id, "words": words}
        with self._changed:  # counted, so that a projector in this file lets it in first
            self._writers += 1
        try:
            with self._write_lock:
                self._writer.execute("BEGIN IMMEDIATE")  # positions are handed out in commit order
                try:
                    (head,) = self._writer.execute("SELECT coalesce(max(position), 0) "
                                                   "FROM events").fetchone()
                    event = Event(head + 1, f"journal-{user}", data, self.clock())
                    self._writer.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (
                        event.position, event.stream, json.dumps(data), event.recorded_at))
                    if self.mode == "inline":  # the read models change in the same transaction
                        self._apply(self._writer, [event])
                    self._writer.execute("COMMIT")
                except BaseException:
                    if self._writer.in_transaction:
                        self._writer.execute("ROLLBACK")
                    raise
        finally:
            with self._changed:
                self._writers -= 1
                self._changed.notify_all()
        self._notify(appended=True)
        return event.position
    # --8<-- [end:command]

    # --8<-- [start:projector]
    def start(self) -> JournalApp:
        """Start the projector thread (async mode): the backlog first, then live events."""
        if self.mode == "async" and not (self._thread and self._thread.is_alive()):
            self._stop.clear()
            self.failure = None
            self._thread = threading.Thread(target=self._follow, name="projector", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._notify()
        if self._thread:
            self._thread.join()

    def _follow(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                seen = self._appends
            try:
                applied = self.run_once()
            except Exception as error:  # noqa: BLE001 - stop; the checkpoint stays put
                self.failure = error
                self._notify()
                return
            with self._changed:
                if applied < self.batch_size:  # caught up: sleep until an append (or a poll)
                    self._changed.wait_for(
                        lambda seen=seen: self._appends != seen or self._stop.is_set(),
                        timeout=self.poll_interval)
                elif self._shares_file and self._writers:  # one write lock: let a command in
                    went_in = self._appends
                    self._changed.wait_for(lambda went_in=went_in: self._appends != went_in
                                           or not self._writers or self._stop.is_set())

    def run_once(self) -> int:
        """Apply one batch after the checkpoint, in one transaction; return its size.

        The transaction locks only the read models' file: the events come
        through another connection, as a WAL read, which no writer waits for.
        (Attaching the log to this connection instead would lock the log too:
        ``BEGIN IMMEDIATE`` takes the write lock of every attached file.)
        """
        self._projector.execute("BEGIN IMMEDIATE")  # one batch at a time per read models' file
        try:
            (position,) = self._projector.execute("SELECT position FROM checkpoint").fetchone()
            rows = self._events.execute(  # committed events never change: any snapshot will do
                "SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (position, self.batch_size)).fetchall()
            batch = [Event(p, s, json.loads(d), r) for p, s, d, r in rows]
            self._apply(self._projector, batch)
            self._projector.execute("COMMIT")
        except BaseException:
            if self._projector.in_transaction:
                self._projector.execute("ROLLBACK")
            raise
        if batch:
            self._notify()
            if self.on_batch:
                self.on_batch(batch, self.clock())
        return len(batch)

    def _apply(self, db: sqlite3.Connection, batch: list[Event]) -> None:
        for event in batch:
            for project in self.projections:
                try:
                    project(db, event)
                except Exception as error:
                    raise ProjectionError(
                        f"projection {project.__name__} failed at position {event.position}: "
                        f"{type(error).__name__} {error}") from error
        if batch:
            self._save_checkpoint(db, batch[-1].position)

    def _save_checkpoint(self, db: sqlite3.Connection, position: int) -> None:
        db.execute("UPDATE checkpoint SET position = ?", (position,))
    # --8<-- [end:projector]

    # --8<-- [start:queries]
    def summary(self, user: str, *, at_least: int = 0, timeout: float = 2.0) -> Summary:
        """The user's summary, once the read models include position ``at_least``."""
        self.wait_for(at_least, timeout)
        with self._read_lock:
            self._reader.execute("BEGIN")  # rows and checkpoint from one snapshot
            try:
                (as_of,) = self._reader.execute("SELECT position FROM checkpoint").fetchone()
                row = self._reader.execute("SELECT entries, words, last_entry FROM summary "
                                           "WHERE user_id = ?", (user,)).fetchone()
            finally:
                self._reader.execute("COMMIT")
        return Summary(user, *(row or (0, 0, None)), as_of)

    def wait_for(self, position: int, timeout: float) -> None:
        """Return once the read models have applied ``position``; else StaleReadError."""
        deadline = time.monotonic() + timeout
        while (reached := self.position()) < position:
            remaining = deadline - time.monotonic()
            if self.failure or remaining <= 0:
                why = (f"the projector stopped: {type(self.failure).__name__}: "
                       f"{self.failure}" if self.failure else
                       f"gave up after {timeout} s (lag: {self.lag().events} events)")
                raise StaleReadError(f"read models are at position {reached}, your write is at "
                                     f"position {position}; {why}")
            with self._changed:
                self._changed.wait(min(remaining, self.poll_interval))

    def position(self) -> int:
        """The last position the read models have applied."""
        with self._read_lock:
            return self._reader.execute("SELECT position FROM checkpoint").fetchone()[0]

    def head(self) -> int:
        """The position of the newest event in the log."""
        with self._read_lock:
            return self._reader.execute(f"SELECT coalesce(max(position), 0) FROM {self._log}"
                                        ).fetchone()[0]

    def lag(self) -> Lag:
        """How far the read models are behind the log, in events and in seconds."""
        with self._read_lock:
            (position,) = self._reader.execute("SELECT position FROM checkpoint").fetchone()
            head, oldest = self._reader.execute(
                f"SELECT (SELECT coalesce(max(position), 0) FROM {self._log}), "
                f"(SELECT min(recorded_at) FROM {self._log} WHERE position > ?)",
                (position,)).fetchone()
        return Lag(head - position, 0.0 if oldest is None else self.clock() - oldest)
    # --8<-- [end:queries]

    def close(self) -> None:
        self.stop()
        for db in (self._writer, self._events, self._projector, self._reader):
            db.close()

    def _notify(self, appended: bool = False) -> None:
        with self._changed:
            self._appends += appended
            self._changed.notify_all()


def mood_chart(db: sqlite3.Connection, event: Event) -> None:
    """A new read model with a bug: it expects a mood that entries do not carry."""
    db.execute("INSERT INTO summary_moods VALUES (?)", (event.data["mood"],))


# --8<-- [start:demo]
def main() -> None:
    """The same writes, projected inline and asynchronously; a stale read; a bug."""
    ticks = itertools.count()

    def clock() -> float:  # a fixed clock keeps the printed output stable
        return 1_000.0 + 10 * next(ticks)

    with tempfile.TemporaryDirectory() as tmp:
        inline = JournalApp(Path(tmp) / "inline.db", mode="inline")
        token = inline.write_entry("ana", "e1", 120)
        print(f"inline         : e1 at position {token}; read at once: "
              f"{inline.summary('ana', at_least=token, timeout=0)}")
        buggy = JournalApp(Path(tmp) / "inline.db", mode="inline",
                           projections=[summarize, mood_chart])
        try:
            buggy.write_entry("ana", "e2", 80)
        except ProjectionError as error:
            print(f"inline + bug   : write refused: {error}; the log still ends at {buggy.head()}")

        app = JournalApp(Path(tmp) / "async.db", mode="async", clock=clock)
        tokens = [app.write_entry("ana", f"e{i}", 100 + i) for i in (1, 2, 3)]
        print(f"async          : e1-e3 at positions {tokens}, projector not started yet")
        print(f"plain read     : {app.summary('ana')}")
        print(f"lag            : {app.lag()}")
        try:
            app.summary("ana", at_least=tokens[-1], timeout=0.2)
        except StaleReadError as error:
            print(f"read own write : StaleReadError: {error}")
        app.start()
        print(f"started, read  : {app.summary('ana', at_least=tokens[-1])}")
        print(f"lag            : {app.lag()}")
        app.stop()

        app.projections.append(mood_chart)  # deploy the buggy read model
        app.start()
        token = app.write_entry("ana", "e4", 90)
        print(f"async + bug    : e4 accepted at position {token}")
        try:
            app.summary("ana", at_least=token, timeout=5)
        except StaleReadError as error:
            print(f"read own write : StaleReadError: {error}")
        print(f"lag            : {app.lag().events} event behind")
        for opened in (inline, buggy, app):
            opened.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
