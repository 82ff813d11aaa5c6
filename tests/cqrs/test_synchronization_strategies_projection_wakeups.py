"""The asynchronous projector's wake-ups, the app's defaults, and what projections receive.

A started projector applies each write as soon as it commits, sleeps while there is
nothing to apply, works through a backlog without waiting for anything, notices appends
from other processes by polling, and never keeps a program from exiting. These tests give
it a poll interval of an hour wherever a wake-up must come from something else, so that a
missed wake-up shows as a read that times out, not as a slower test.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from snippets.cqrs.synchronization_strategies_projection import (
    Event,
    JournalApp,
    StaleReadError,
    connect,
    mood_chart,
    summarize,
)
from tests.cqrs.test_synchronization_strategies_projection import folded, read_model

ROOT = Path(__file__).resolve().parents[2]
NEVER = 3600.0  # a poll interval no test lives to see


# ------------------------------------------------------------------ defaults
def test_by_default_the_app_is_asynchronous_applies_batches_of_100_and_reads_wait_2_s(
        tmp_path):
    app = JournalApp(tmp_path / "journal.db")
    assert (app.mode, app.failure, app.on_batch) == ("async", None, None)
    for i in range(150):
        app.write_entry("ana", f"e{i}", 1)
    assert app.summary("ana").entries == 0  # nothing is applied until a projector runs
    began = time.monotonic()
    with pytest.raises(StaleReadError, match=r"^read models are at position 0, your write is at "
                                             r"position 150; gave up after 2.0 s \(lag: 150 "
                                             r"events\)$"):
        app.summary("ana", at_least=150)
    assert time.monotonic() - began >= 2.0
    assert [app.run_once(), app.run_once(), app.run_once()] == [100, 50, 0]
    assert app.summary("ana", at_least=150, timeout=0).entries == 150
    app.close()


def test_connect_opens_in_autocommit_and_wal_mode(tmp_path):
    path = tmp_path / "notes.db"
    db = connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('kept')")
    assert not db.in_transaction  # each statement committed on its own
    with contextlib.closing(sqlite3.connect(path)) as other:
        assert other.execute("SELECT * FROM notes").fetchall() == [("kept",)]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


# ------------------------------------------------------------------ what projections get
@pytest.mark.parametrize("mode", ["inline", "async"])
def test_each_projection_gets_the_event_as_it_was_written(tmp_path, mode):
    received: list[Event] = []
    app = JournalApp(tmp_path / "journal.db", mode=mode, clock=lambda: 100.0,
                     projections=[summarize, lambda db, event: received.append(event)])
    app.write_entry("ana", "e1", 12)
    app.run_once()
    assert received == [Event(1, "journal-ana", {"user": "ana", "entry_id": "e1", "words": 12},
                              100.0)]
    app.close()


def test_mood_chart_given_a_mood_and_its_table_records_the_mood(tmp_path):
    """Its one bug is the mood that entries do not carry."""
    db = connect(tmp_path / "read.db")
    db.execute("CREATE TABLE summary_moods (mood TEXT)")
    mood_chart(db, Event(1, "journal-ana", {"user": "ana", "entry_id": "e1", "words": 3,
                                            "mood": "calm"}, 100.0))
    assert db.execute("SELECT * FROM summary_moods").fetchall() == [("calm",)]
    db.close()


# ------------------------------------------------------------------ wake-ups
def test_a_started_projector_applies_each_write_at_once_not_at_its_next_poll(tmp_path):
    app = JournalApp(tmp_path / "journal.db", poll_interval=NEVER)
    reporting, go_on = threading.Event(), threading.Event()

    def on_batch(batch: list[Event], now: float) -> None:
        if batch[-1].position == 2:  # committed; the projector has not gone back to sleep yet
            reporting.set()
            assert go_on.wait(60)

    app.on_batch = on_batch
    app.start()
    token = app.write_entry("ana", "e1", 1)
    assert app.summary("ana", at_least=token, timeout=10).entries == 1
    app.write_entry("ana", "e2", 2)
    assert reporting.wait(60)
    token = app.write_entry("ana", "e3", 3)  # arrives while the projector reports e2
    go_on.set()
    assert app.summary("ana", at_least=token, timeout=10).entries == 3
    app.close()


class CountingPasses(JournalApp):
    """Counts the projector's passes (``run_once`` calls), empty ones included."""

    passes = 0

    def run_once(self) -> int:
        applied = super().run_once()
        self.passes += 1
        return applied


def test_a_caught_up_projector_sleeps_until_the_next_write(tmp_path):
    app = CountingPasses(tmp_path / "journal.db", poll_interval=NEVER).start()
    for i in range(1, 6):
        token = app.write_entry("ana", f"e{i}", i)
        assert app.summary("ana", at_least=token, timeout=10).entries == i
    app.stop()
    assert app.passes <= 6  # one pass at start, then at most one per write: no busy loop
    app.close()


def test_a_projector_notices_appends_from_another_process_by_polling(tmp_path):
    path = tmp_path / "journal.db"
    projecting = JournalApp(path, poll_interval=0.02).start()
    other = JournalApp(path)  # stands for another process: its appends wake no one here
    token = projecting.write_entry("ana", "e1", 10)
    projecting.wait_for(token, timeout=10)  # the projector has applied e1 and gone to sleep
    token = other.write_entry("ana", "e2", 20)
    projecting.wait_for(token, timeout=10)
    assert projecting.summary("ana").entries == 2
    other.close()
    projecting.close()


def test_after_commands_that_arrive_together_the_projector_catches_up_the_whole_backlog(
        tmp_path):
    path = tmp_path / "journal.db"
    app = JournalApp(path, batch_size=10, poll_interval=NEVER)
    together, errors = threading.Barrier(4), []

    def writer(user: str) -> None:
        try:
            for i in range(10):
                together.wait(60)  # each round, four commands arrive at once
                app.write_entry(user, f"{user}-{i}", i + 1)
        except Exception as error:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(f"u{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and app.head() == 40
    app.start()
    app.wait_for(40, timeout=10)  # four full batches in a row, no append in between
    app.close()
    assert read_model(path) == folded(path)


def test_in_one_file_a_waiting_command_that_fails_does_not_hold_up_the_backlog(tmp_path):
    path = tmp_path / "journal.db"
    inside, release = threading.Event(), threading.Event()

    def held(db: sqlite3.Connection, event: Event) -> None:  # holds the first batch open
        summarize(db, event)
        if event.position == 10:
            inside.set()
            assert release.wait(60)

    app = JournalApp(path, projections=[held], batch_size=10, poll_interval=NEVER)
    for i in range(30):  # a backlog of three batches
        app.write_entry("ana", f"e{i}", 1)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events "
                   "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END")
    waiting = threading.Event()
    app._writer.set_trace_callback(lambda sql: sql == "BEGIN IMMEDIATE" and waiting.set())
    app.start()
    assert inside.wait(60)
    refused: list[str] = []

    def write() -> None:
        try:
            app.write_entry("bo", "late", 7)
        except sqlite3.IntegrityError as error:
            refused.append(str(error))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert waiting.wait(60)  # the command waits for the batch in flight
    finally:
        release.set()
    writer.join(60)
    assert refused == ["refused by trigger"]
    app.wait_for(30, timeout=10)  # the projector let it in, and went on when it failed
    assert (app.head(), app.position()) == (30, 30)
    app.close()


def test_a_program_that_never_stops_its_projector_still_exits(tmp_path):
    before = set(threading.enumerate())
    app = JournalApp(tmp_path / "here.db").start()
    started = set(threading.enumerate()) - before
    assert [thread.daemon for thread in started] == [True]  # one thread, which exit does not wait for
    app.close()
    code = ("import sys\n"
            "from snippets.cqrs.synchronization_strategies_projection import JournalApp\n"
            "app = JournalApp(sys.argv[1]).start()\n"
            "token = app.write_entry('ana', 'e1', 10)\n"
            "print(app.summary('ana', at_least=token, timeout=30).entries)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "journal.db")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
