"""Inline and asynchronous projection: read-your-writes with a token, measured lag, a
projector killed mid-batch, failures between apply and checkpoint, concurrent writers, and
who waits for whose write lock."""

from __future__ import annotations

import itertools
import json
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.cqrs.synchronization_strategies_projection import (
    JournalApp,
    Lag,
    ProjectionError,
    StaleReadError,
    main,
    mood_chart,
    summarize,
)

ROOT = Path(__file__).resolve().parents[2]


def folded(path: Path) -> dict[str, tuple[int, int, str]]:
    """The summary recomputed from the events: (entries, words, last entry) per user."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT data FROM events ORDER BY position").fetchall()
    result: dict[str, tuple[int, int, str]] = {}
    for (text,) in rows:
        d = json.loads(text)
        entries, words, _ = result.get(d["user"], (0, 0, ""))
        result[d["user"]] = (entries + 1, words + d["words"], d["entry_id"])
    return result


def read_model(path: Path) -> dict[str, tuple[int, int, str]]:
    with sqlite3.connect(path) as db:
        return {u: (e, w, last) for u, e, w, last in db.execute("SELECT * FROM summary")}


@pytest.fixture
def app(tmp_path):
    opened = JournalApp(tmp_path / "journal.db", mode="async", poll_interval=0.02)
    yield opened
    opened.close()


# ------------------------------------------------------------------ inline
def test_inline_a_read_right_after_a_write_sees_it_without_waiting(tmp_path):
    app = JournalApp(tmp_path / "journal.db", mode="inline")
    for i in range(1, 51):
        token = app.write_entry("ana", f"e{i}", 10)
        summary = app.summary("ana", at_least=token, timeout=0)
        assert (summary.entries, summary.words, summary.as_of) == (i, 10 * i, token)
    assert app.lag() == Lag(0, 0.0)
    app.close()


def test_inline_a_failing_projection_refuses_the_write_and_stores_nothing(tmp_path):
    app = JournalApp(tmp_path / "journal.db", mode="inline", projections=[summarize, mood_chart])
    with pytest.raises(ProjectionError, match="projection mood_chart failed at position 1: "
                                              "KeyError 'mood'"):
        app.write_entry("ana", "e1", 10)
    assert (app.head(), app.position(), app.summary("ana").entries) == (0, 0, 0)
    app.close()


@pytest.mark.parametrize("words", [-1, True, "12", 1.5, None])
def test_a_bad_word_count_is_refused_before_anything_is_stored(app, words):
    with pytest.raises(ValueError, match=f"words must be a whole number >= 0, not {words!r}"):
        app.write_entry("ana", "e1", words)
    assert app.head() == 0


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'inline' or 'async', not 'eventual'"):
        JournalApp(tmp_path / "journal.db", mode="eventual")


@pytest.mark.parametrize("table", ["events", "summary"])
def test_a_failure_that_makes_sqlite_roll_back_on_its_own_is_reported_as_itself(tmp_path, table):
    path = tmp_path / "journal.db"
    app = JournalApp(path, mode="inline")
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                   "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END")
    with pytest.raises((sqlite3.IntegrityError, ProjectionError), match="refused by trigger"):
        app.write_entry("ana", "e1", 10)
    assert (app.head(), app.summary("ana").entries) == (0, 0)
    app.close()


def test_an_async_batch_that_sqlite_rolls_back_on_its_own_leaves_the_checkpoint(tmp_path):
    path = tmp_path / "journal.db"
    app = JournalApp(path, mode="async")
    app.write_entry("ana", "e1", 10)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON summary "
                   "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END")
    with pytest.raises(ProjectionError, match="refused by trigger"):
        app.run_once()
    assert app.position() == 0
    app.close()


def test_starting_twice_runs_one_projector_and_inline_mode_runs_none(app, tmp_path):
    app.start()
    thread = app._thread
    assert app.start()._thread is thread
    inline = JournalApp(tmp_path / "inline.db", mode="inline").start()
    assert inline._thread is None
    inline.close()


def test_each_applied_batch_is_reported_with_its_commit_time_to_measure_lag(tmp_path):
    ticks = itertools.count()
    app = JournalApp(tmp_path / "journal.db", mode="async", batch_size=2,
                     clock=lambda: 10.0 * next(ticks))
    reports = []
    app.on_batch = lambda batch, now: reports.append(
        [(e.position, now - e.recorded_at) for e in batch])
    for i in range(3):
        app.write_entry("ana", f"e{i}", 1)  # stamped 0, 10, 20
    while app.run_once():
        pass
    assert reports == [[(1, 30.0), (2, 20.0)], [(3, 20.0)]]  # committed at 30, then at 40
    app.close()


# ------------------------------------------------------------------ asynchronous
def test_async_a_query_after_a_write_with_its_token_sees_the_write(app):
    app.start()
    for i in range(1, 201):
        token = app.write_entry("ana", f"e{i}", 5)
        summary = app.summary("ana", at_least=token, timeout=10)
        assert summary.as_of >= token and summary.entries >= i
        assert summary.entries == summary.as_of  # one user: the position counts the entries


def test_async_read_models_in_their_own_file_follow_the_log_in_another(tmp_path):
    app = JournalApp(tmp_path / "log.db", mode="async", read_path=tmp_path / "read.db",
                     poll_interval=0.02).start()
    for i in range(1, 31):
        token = app.write_entry(f"u{i % 3}", f"e{i}", i)
        assert app.summary(f"u{i % 3}", at_least=token, timeout=10).as_of >= token
    assert app.lag() == Lag(0, 0.0) and app.head() == 30
    app.close()
    assert read_model(tmp_path / "read.db") == folded(tmp_path / "log.db")
    with sqlite3.connect(tmp_path / "log.db") as db:  # the log's file holds only the log
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [
            ("events",)]


def test_inline_projection_refuses_read_models_in_another_file(tmp_path):
    with pytest.raises(ValueError, match="^inline projection needs the read models in the "
                                         "events' file$"):
        JournalApp(tmp_path / "log.db", mode="inline", read_path=tmp_path / "read.db")


def test_async_a_read_without_a_token_may_be_stale_and_the_lag_says_by_how_much(tmp_path):
    ticks = itertools.count()
    app = JournalApp(tmp_path / "journal.db", mode="async", clock=lambda: 100.0 + next(ticks))
    for i in range(5):
        app.write_entry("ana", f"e{i}", 10)  # stamped 100, 101, ... 104
    assert app.summary("ana").entries == 0
    assert app.lag() == Lag(5, 5.0)  # now is 105; the oldest unapplied event is from 100
    app.run_once()
    assert app.lag() == Lag(0, 0.0)
    assert app.summary("ana").entries == 5
    app.close()


def test_a_read_that_cannot_be_served_in_time_names_both_positions(app):
    token = app.write_entry("ana", "e1", 10)
    began = time.monotonic()
    with pytest.raises(StaleReadError, match=r"^read models are at position 0, your write is at "
                                             r"position 1; gave up after 0.05 s \(lag: 1 events\)$"):
        app.summary("ana", at_least=token, timeout=0.05)
    assert time.monotonic() - began >= 0.05  # it waited out its timeout before giving up


def test_a_read_waiting_for_a_failed_projector_is_told_why_at_once(app):
    app.projections.append(mood_chart)
    app.start()
    token = app.write_entry("ana", "e1", 10)
    with pytest.raises(StaleReadError, match="the projector stopped: ProjectionError: projection "
                                             "mood_chart failed at position 1: KeyError 'mood'"):
        app.summary("ana", at_least=token, timeout=60)  # returns as soon as the failure is known
    app.projections.remove(mood_chart)  # the fix is deployed
    app.start()
    assert app.summary("ana", at_least=token, timeout=10).entries == 1


def test_writers_in_threads_each_read_their_own_writes_and_nothing_is_skipped(app, tmp_path):
    app.start()
    errors = []

    def writer(user: str) -> None:
        try:
            for i in range(1, 41):
                token = app.write_entry(user, f"{user}-{i}", i)
                assert app.summary(user, at_least=token, timeout=10).entries == i
        except Exception as error:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(f"u{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    app.wait_for(app.head(), timeout=10)
    assert read_model(tmp_path / "journal.db") == folded(tmp_path / "journal.db")
    assert app.head() == 160


# ------------------------------------------------------------------ crashes
def test_a_projector_killed_mid_batch_resumes_without_loss_or_double_counting(tmp_path):
    path = tmp_path / "journal.db"
    writer = JournalApp(path, mode="async")
    for i in range(300):
        writer.write_entry(f"u{i % 7}", f"e{i}", i)
    victim = subprocess.Popen([sys.executable, "-m", "tests.cqrs.workers", "project", str(path),
                               "120"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([victim.stdout], [], [], 60)
        assert ready and victim.stdout.readline() == "mid-batch\n"  # 101-120 applied, uncommitted
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait(10)
        victim.stdout.close()
    assert writer.position() == 100  # batches of 50: two committed, the third never was
    writer.start()
    writer.wait_for(300, timeout=30)
    assert read_model(path) == folded(path)
    writer.close()


class FailsBeforeCheckpoint(JournalApp):
    """Raises after a batch is applied and before its checkpoint is saved, at chosen batches."""

    fail_at: set[int]

    def _save_checkpoint(self, db, position: int) -> None:
        if position in self.fail_at:
            self.fail_at.discard(position)
            raise OSError(f"disk full at {position}")
        super()._save_checkpoint(db, position)


def test_an_exception_between_apply_and_checkpoint_counts_nothing_twice(tmp_path):
    path = tmp_path / "journal.db"
    app = FailsBeforeCheckpoint(path, mode="async", batch_size=10, poll_interval=0.02)
    app.fail_at = {30}
    for i in range(50):
        app.write_entry(f"u{i % 3}", f"e{i}", i)
    app.start()
    with pytest.raises(StaleReadError, match="the projector stopped: OSError: disk full at 30"):
        app.summary("u0", at_least=50, timeout=30)
    assert app.position() == 20  # the third batch was applied, then rolled back
    app.start()  # restarted after the incident
    app.wait_for(50, timeout=30)
    assert read_model(path) == folded(path)
    app.close()


@pytest.fixture(scope="module")
def forty_entries(tmp_path_factory) -> Path:
    """A journal with 40 entries by 4 users and nothing projected, to copy per example."""
    path = tmp_path_factory.mktemp("template") / "journal.db"
    app = JournalApp(path, mode="async")
    for i in range(40):
        app.write_entry(f"u{i % 4}", f"e{i}", i + 1)
    app.close()
    return path


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 12), fail_at=st.sets(st.integers(1, 40), max_size=6),
       apply_fails=st.booleans())
def test_whatever_fails_between_apply_and_checkpoint_the_summary_equals_the_fold(
        tmp_path_factory, forty_entries, batch, fail_at, apply_fails):
    path = tmp_path_factory.mktemp("f") / "journal.db"
    shutil.copy(forty_entries, path)
    failing = set(fail_at)

    def flaky(db, event) -> None:
        summarize(db, event)  # applied first, so a failure here is after the change
        if apply_fails and event.position in failing:
            failing.discard(event.position)
            raise OSError("hiccup")

    app = FailsBeforeCheckpoint(path, mode="async", projections=[flaky], batch_size=batch)
    app.fail_at = set() if apply_fails else set(fail_at)
    for _ in range(200):
        try:
            if not app.run_once():
                break
        except (ProjectionError, OSError):
            continue
    assert app.position() == 40
    assert read_model(path) == folded(path)
    app.close()


def test_main_shows_inline_then_async_a_stale_read_and_a_broken_read_model(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("inline + bug   : write refused: projection mood_chart failed at position "
                        "2: KeyError 'mood'; the log still ends at 1")
    assert lines[3] == ("plain read     : Summary(user='ana', entries=0, words=0, last_entry=None, "
                        "as_of=0)")
    assert lines[4] == "lag            : Lag(events=3, seconds=30.0)"
    assert lines[5] == ("read own write : StaleReadError: read models are at position 0, your "
                        "write is at position 3; gave up after 0.2 s (lag: 3 events)")
    assert lines[6] == ("started, read  : Summary(user='ana', entries=3, words=306, "
                        "last_entry='e3', as_of=3)")
    assert lines[-1] == "lag            : 1 event behind"


# ------------------------------------------------------------------ locks
def never_wait(app: JournalApp) -> None:
    """Give every connection of ``app`` a busy timeout of 0: any lock wait fails at once."""
    for db in vars(app).values():
        if isinstance(db, sqlite3.Connection):
            db.execute("PRAGMA busy_timeout=0")


class HeldWrite:
    """A clock that holds the next write inside its transaction until released."""

    def __init__(self) -> None:
        self.armed, self.inside, self.release = (threading.Event(), threading.Event(),
                                                 threading.Event())

    def __call__(self) -> float:
        if self.armed.is_set():  # write_entry asks the time inside its write transaction
            self.armed.clear()
            self.inside.set()
            assert self.release.wait(60)
        return 100.0


def holding_batch(at: int) -> tuple[threading.Event, threading.Event, object]:
    """A projection that stops inside the projector's transaction at position ``at``."""
    inside, release = threading.Event(), threading.Event()

    def held(db, event) -> None:
        summarize(db, event)
        if event.position == at:
            inside.set()
            assert release.wait(60)

    return inside, release, held


def test_a_batch_in_flight_in_its_own_file_never_makes_the_writer_wait(tmp_path):
    inside, release, held = holding_batch(at=1)
    app = JournalApp(tmp_path / "log.db", mode="async", read_path=tmp_path / "read.db",
                     projections=[held])
    app.write_entry("ana", "e1", 10)
    never_wait(app)
    batch = threading.Thread(target=app.run_once)
    batch.start()
    try:
        assert inside.wait(60)  # the batch has applied e1 and holds its transaction open
        tokens = [app.write_entry("ana", f"e{i}", 10 * i) for i in (2, 3)]
    finally:
        release.set()
        batch.join(60)
    assert tokens == [2, 3]
    assert (app.position(), app.head()) == (1, 3)  # the batch committed e1 only
    assert app.run_once() == 2
    app.close()
    assert read_model(tmp_path / "read.db") == folded(tmp_path / "log.db") == {
        "ana": (3, 60, "e3")}


def test_a_write_in_flight_never_makes_a_batch_in_its_own_file_wait(tmp_path):
    clock = HeldWrite()
    app = JournalApp(tmp_path / "log.db", mode="async", read_path=tmp_path / "read.db",
                     clock=clock)
    app.write_entry("ana", "e1", 10)
    never_wait(app)
    clock.armed.set()
    tokens: list[int] = []
    writer = threading.Thread(target=lambda: tokens.append(app.write_entry("ana", "e2", 20)))
    writer.start()
    try:
        assert clock.inside.wait(60)  # e2's write transaction is open, the log's lock held
        assert app.run_once() == 1
        assert app.position() == 1
    finally:
        clock.release.set()
        writer.join(60)
    assert tokens == [2]
    assert app.run_once() == 1
    assert app.summary("ana", at_least=2, timeout=0).words == 30
    app.close()


def test_in_one_file_the_writer_waits_for_a_batch_in_flight(tmp_path):
    inside, release, held = holding_batch(at=1)
    app = JournalApp(tmp_path / "journal.db", mode="async", projections=[held])
    app.write_entry("ana", "e1", 10)
    never_wait(app)
    batch = threading.Thread(target=app.run_once)
    batch.start()
    try:
        assert inside.wait(60)
        with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
            app.write_entry("ana", "e2", 20)  # one file, one write lock
    finally:
        release.set()
        batch.join(60)
    assert (app.head(), app.position()) == (1, 1)  # the refused write stored nothing
    assert app.write_entry("ana", "e2", 20) == 2
    app.close()


def test_opening_while_another_connection_writes_waits_for_it_instead_of_failing(
        tmp_path, monkeypatch):
    import snippets.cqrs.synchronization_strategies_projection as module

    path = tmp_path / "journal.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("CREATE TABLE notes (text TEXT)")  # mid-write, not yet in WAL mode
    blocker.execute("INSERT INTO notes VALUES ('kept')")
    progress, retried = threading.Event(), []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        retried.append(seconds)
        progress.set()
        real_sleep(seconds)

    monkeypatch.setattr(module, "time", SimpleNamespace(
        sleep=sleep, monotonic=time.monotonic, time=time.time))
    opened: dict[str, object] = {}

    def open_app() -> None:
        try:
            opened["app"] = JournalApp(path, mode="async")
        except Exception as error:  # noqa: BLE001 - shown by the assertion below
            opened["error"] = error
        finally:
            progress.set()

    thread = threading.Thread(target=open_app)
    thread.start()
    assert progress.wait(60)
    try:
        assert "error" not in opened, opened.get("error")
        assert retried and retried[0] == 0.01  # the WAL switch was refused, and is retried
    finally:
        blocker.execute("COMMIT")
        thread.join(60)
    app = opened["app"]
    assert app.write_entry("ana", "e1", 10) == 1
    app.close()
    blocker.close()
    with sqlite3.connect(path) as db:  # in WAL mode now, and the other's write is kept
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT * FROM notes").fetchall() == [("kept",)]


def test_opening_gives_up_after_the_lock_timeout_and_loses_nothing(tmp_path, monkeypatch):
    import snippets.cqrs.synchronization_strategies_projection as module

    path = tmp_path / "journal.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("CREATE TABLE notes (text TEXT)")
    blocker.execute("INSERT INTO notes VALUES ('kept')")
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT INTO notes VALUES ('in flight')")  # never committed by the test
    monkeypatch.setattr(module, "LOCK_TIMEOUT", 0.2)
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
        JournalApp(path, mode="async")
    assert time.monotonic() - began >= 0.2
    blocker.execute("COMMIT")
    app = JournalApp(path, mode="async")
    assert [app._writer.execute("PRAGMA busy_timeout").fetchone()[0],
            app._writer.execute("PRAGMA journal_mode").fetchone()[0]] == [200, "wal"]
    assert app._writer.execute("SELECT * FROM notes").fetchall() == [("kept",), ("in flight",)]
    app.close()
    blocker.close()


def test_in_one_file_a_waiting_write_goes_in_before_the_projectors_next_batch(tmp_path):
    inside, release, held = holding_batch(at=1)
    seen_at_write: list[int] = []
    app = JournalApp(tmp_path / "journal.db", mode="async", projections=[held], batch_size=10,
                     clock=lambda: seen_at_write.append(app.position()) or 100.0)
    for i in range(50):  # a backlog of five batches
        app.write_entry("ana", f"e{i}", 1)
    seen_at_write.clear()
    waiting = threading.Event()
    app._writer.set_trace_callback(lambda sql: sql == "BEGIN IMMEDIATE" and waiting.set())
    app.start()
    assert inside.wait(60)  # the first batch holds the file's write lock
    tokens: list[int] = []
    writer = threading.Thread(target=lambda: tokens.append(app.write_entry("bo", "late", 7)))
    writer.start()
    try:
        assert waiting.wait(60)  # the write is asking for the lock
    finally:
        release.set()
    writer.join(60)
    assert tokens == [51]
    assert seen_at_write == [10]  # it went in right after the batch in flight, not after all
    app.wait_for(51, timeout=30)
    app.close()
    assert read_model(tmp_path / "journal.db") == folded(tmp_path / "journal.db")


def test_in_its_own_file_the_projector_keeps_applying_while_a_command_holds_the_log(tmp_path):
    clock = HeldWrite()
    app = JournalApp(tmp_path / "log.db", mode="async", read_path=tmp_path / "read.db",
                     batch_size=10, poll_interval=0.02, clock=clock)
    for i in range(30):
        app.write_entry("ana", f"e{i}", 1)
    never_wait(app)
    clock.armed.set()
    writer = threading.Thread(target=app.write_entry, args=("bo", "late", 7))
    writer.start()
    try:
        assert clock.inside.wait(60)  # a command holds the log's write lock
        app.start()
        app.wait_for(30, timeout=30)  # three batches commit meanwhile
        assert (app.position(), app.head(), app.failure) == (30, 30, None)
    finally:
        clock.release.set()
        writer.join(60)
    app.wait_for(31, timeout=30)
    app.close()
    assert read_model(tmp_path / "read.db") == folded(tmp_path / "log.db")


def test_attaching_the_log_to_a_connection_that_begins_immediate_locks_the_log(tmp_path):
    app = JournalApp(tmp_path / "log.db", mode="async", read_path=tmp_path / "read.db")
    never_wait(app)
    attached = sqlite3.connect(tmp_path / "read.db", isolation_level=None)
    attached.execute("ATTACH DATABASE ? AS log", (str(tmp_path / "log.db"),))
    attached.execute("BEGIN IMMEDIATE")  # meant for the read models only
    with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
        app.write_entry("ana", "e1", 10)
    attached.execute("ROLLBACK")
    assert app.write_entry("ana", "e1", 10) == 1
    attached.close()
    app.close()


def test_a_file_that_is_not_a_database_is_refused_at_once_and_left_as_it_was(
        tmp_path, monkeypatch):
    import snippets.cqrs.synchronization_strategies_projection as module

    path = tmp_path / "journal.db"
    text = b"Ana's notes, not a database. " * 20
    path.write_bytes(text)
    retried: list[float] = []
    monkeypatch.setattr(module, "LOCK_TIMEOUT", 0.5)
    monkeypatch.setattr(module, "time", SimpleNamespace(
        sleep=lambda seconds: retried.append(seconds) or time.sleep(seconds),
        monotonic=time.monotonic, time=time.time))
    with pytest.raises(sqlite3.DatabaseError, match="^file is not a database$"):
        JournalApp(path, mode="async")
    assert retried == []  # only a lock is worth waiting for
    assert path.read_bytes() == text
