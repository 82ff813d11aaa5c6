"""Stateful stream processing that survives a restart: state and input offset in one transaction.

A windowed aggregation keeps state between events (open windows, the newest
event time). If the process dies, that state must come back *exactly as it was
at some input position*, and processing must resume from that position. So
every batch commits, in one SQLite transaction, the closed windows it emitted,
the too-late events, the aggregator's state and the offset of the last input
event. A crash anywhere rolls all of it back together, and the restart
re-reads the same events: the effect is exactly once. Each transaction first
checks, under the write lock, that the committed offset is still the one this
instance holds; if another instance moved it, the state is reloaded from
there, so a stale instance never rewinds the checkpoint.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Event(NamedTuple):
    user: str
    time: int  # event time, seconds
    words: int


class CheckpointError(Exception):
    """The stored checkpoint cannot be used; the message says why and where."""


class Log:
    """The input: an append-only log read by offset (a stand-in for one Kafka partition)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS log (offset INTEGER PRIMARY KEY, "
                         "user TEXT NOT NULL, time INTEGER NOT NULL, words INTEGER NOT NULL)")

    def append(self, events: list[Event]) -> None:
        self._db.executemany("INSERT INTO log (user, time, words) VALUES (?, ?, ?)", events)

    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        rows = self._db.execute("SELECT * FROM log WHERE offset > ? ORDER BY offset LIMIT ?",
                                (after, limit)).fetchall()
        return [(offset, Event(*rest)) for offset, *rest in rows]

    def end(self) -> int:
        return self._db.execute("SELECT coalesce(max(offset), 0) FROM log").fetchone()[0]


SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1),
                                       offset INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hourly_words (user TEXT, start INTEGER, words INTEGER NOT NULL,
                                         entries INTEGER NOT NULL, PRIMARY KEY (user, start));
CREATE TABLE IF NOT EXISTS too_late (offset INTEGER PRIMARY KEY, user TEXT, time INTEGER,
                                     words INTEGER);
"""


# --8<-- [start:processor]
class HourlyWords:
    """Words per user per hour (tumbling windows), with a watermark and a side output.

    Args:
        path: the processor's own SQLite file: output tables and checkpoint.
        allowed_lateness: seconds an event may lag the newest event time.
        commit_every: events per transaction (the most that a crash makes us redo).
    """

    SIZE = 3600

    def __init__(self, path: str | Path, *, allowed_lateness: int, commit_every: int = 100) -> None:
        self.path, self.lateness, self.commit_every = str(path), allowed_lateness, commit_every
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._load()

    def _load(self) -> None:
        row = self._db.execute("SELECT offset, state FROM checkpoint").fetchone()
        self.offset, self._open, self._newest = 0, {}, None
        if row is None:
            return
        try:
            state = json.loads(row[1])
            self._open = {(user, start): cell for user, start, *cell in state["open"]}
            self.offset, self._newest = row[0], state["newest"]
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.path}: checkpoint at offset {row[0]} is corrupt: "
                                  f"{error!r}") from None

    def run(self, log: Log, on_event: Callable[[int], None] | None = None) -> int:
        """Process everything after the checkpoint; return how many events were read."""
        if log.end() < self.offset:
            raise CheckpointError(f"{self.path}: checkpoint is at offset {self.offset} but the "
                                  f"log ends at {log.end()}: the input was replaced")
        done = 0
        while batch := log.read(after=self.offset, limit=self.commit_every):
            self._db.execute("BEGIN IMMEDIATE")  # the write lock, then: are we current?
            if self._committed_offset() != self.offset:  # another instance moved it
                self._db.execute("ROLLBACK")
                self._load()  # carry on from its checkpoint, never write over it
                continue
            try:
                for offset, event in batch:
                    if on_event:
                        on_event(offset)  # tests crash here
                    self._process(offset, event)
                self._db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?)", (
                    batch[-1][0], json.dumps({"newest": self._newest,
                                              "open": self.open_windows()})))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._load()  # forget the half-applied batch in memory too
                raise
            self.offset, done = batch[-1][0], done + len(batch)
        return done

    def open_windows(self) -> list[tuple[str, int, int, int]]:
        """The windows still open, (user, start, words, entries): the state the checkpoint keeps."""
        return sorted((user, start, *cell) for (user, start), cell in self._open.items())

    def _committed_offset(self) -> int:
        row = self._db.execute("SELECT offset FROM checkpoint").fetchone()
        return 0 if row is None else row[0]

    def _process(self, offset: int, event: Event) -> None:
        self._newest = max(event.time, self._newest if self._newest is not None else event.time)
        watermark = self._newest - self.lateness
        start = event.time - event.time % self.SIZE
        if start + self.SIZE <= watermark:
            self._db.execute("INSERT INTO too_late VALUES (?, ?, ?, ?)", (offset, *event))
        else:
            cell = self._open.setdefault((event.user, start), [0, 0])
            cell[0], cell[1] = cell[0] + event.words, cell[1] + 1
        for user, begun in [k for k in self._open if k[1] + self.SIZE <= watermark]:
            self._db.execute("INSERT INTO hourly_words VALUES (?, ?, ?, ?)",
                             (user, begun, *self._open.pop((user, begun))))
# --8<-- [end:processor]

    def results(self) -> list[tuple[str, int, int, int]]:
        """The closed windows: (user, start, words, entries), in order."""
        return self._db.execute("SELECT * FROM hourly_words ORDER BY start, user").fetchall()

    def late(self) -> list[tuple[int, str, int, int]]:
        return self._db.execute("SELECT * FROM too_late ORDER BY offset").fetchall()

    def close(self) -> None:
        self._db.close()


def evening() -> list[Event]:
    """Two users' entries over three hours, out of order, one of them too late."""
    at = lambda h, m: h * 3600 + m * 60
    return [Event("ana", at(19, 5), 120), Event("ben", at(19, 10), 300), Event("ana", at(19, 50), 80),
            Event("ana", at(19, 25), 200), Event("ben", at(20, 20), 40), Event("ana", at(20, 5), 60),
            Event("ana", at(20, 40), 90), Event("ana", at(19, 55), 30), Event("ben", at(21, 30), 10),
            Event("ana", at(21, 15), 70), Event("ben", at(22, 45), 5), Event("ana", at(23, 59), 0)]


class Crash(Exception):
    """Stands in for the process dying."""


def main() -> None:
    """Crash mid-batch, restart, and compare with a run that never crashed."""
    def crash_at(offset: int) -> Callable[[int], None]:
        def hook(current: int) -> None:
            if current == offset:
                raise Crash(f"killed while processing offset {offset}")
        return hook

    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp) / "input.db")
        log.append(evening())
        first = HourlyWords(Path(tmp) / "state.db", allowed_lateness=1800, commit_every=5)
        try:
            first.run(log, on_event=crash_at(8))
        except Crash as error:
            print(f"first run : {error}; committed up to offset {first.offset}, "
                  f"{len(first.results())} windows closed")
        first.close()
        restarted = HourlyWords(Path(tmp) / "state.db", allowed_lateness=1800, commit_every=5)
        print(f"restart   : resumes after offset {restarted.offset}, reads "
              f"{restarted.run(log)} events")
        clean = HourlyWords(Path(tmp) / "clean.db", allowed_lateness=1800, commit_every=5)
        clean.run(log)
        for user, start, words, entries in restarted.results():
            print(f"  {user} {start // 3600:02}:00  {words:>3} words in {entries}")
        print("too late  : " + ", ".join(f"offset {o}: {u} {t // 3600:02}:{t % 3600 // 60:02} {w} words"
                                         for o, u, t, w in restarted.late()))
        print("still open: " + ", ".join(f"{u} {s // 3600:02}:00 {w} words in {n}"
                                         for u, s, w, n in restarted.open_windows()))
        print(f"same as a run without a crash: {restarted.results() == clean.results()}, "
              f"{restarted.late() == clean.late()} and "
              f"{restarted.open_windows() == clean.open_windows()}")


if __name__ == "__main__":
    main()
