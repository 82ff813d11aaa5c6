"""A checkpoint committed with the read model survives crashes mid-batch or between any two
statements, SIGKILL, a second instance running at once and a restored backup; a checkpoint
kept in the event store does not. Bad arguments are refused with nothing applied."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.subscriptions_checkpoint import (
    CheckpointError,
    CheckpointInTheStore,
    Crash,
    EventLog,
    ProjectionError,
    WordsPerDay,
    crash_at,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
RAM = "/dev/shm" if Path("/dev/shm").is_dir() else None


def history(log: EventLog, count: int) -> None:
    for n in range(count):
        log.append("EntryWritten", {"day": f"2025-03-{1 + n % 5:02}", "words": 50 + n})
        if n % 4 == 0:
            log.append("GoalSet", {"title": "ignored by this read model"})


def clean_table(folder: Path, log: EventLog) -> list:
    clean = WordsPerDay(folder / "clean.db", batch=1000)
    clean.catch_up(log)
    return clean.table()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 8), st.data())
def test_crashes_anywhere_mid_batch_then_a_restart_give_the_read_model_of_a_clean_run(
        count, batch, data):
    with tempfile.TemporaryDirectory(dir=RAM) as tmp:
        folder = Path(tmp)
        log = EventLog(folder / "events.db")
        history(log, count)
        last = log.read_all(0, 10_000)[-1][0]
        for position in data.draw(st.lists(st.integers(1, last), max_size=3)):
            model = WordsPerDay(folder / "read.db", batch=batch)
            if position > model.checkpoint(log):  # positions already applied are not re-read
                with pytest.raises(Crash):
                    model.catch_up(log, on_event=crash_at(position))
                assert model.checkpoint(log) < position  # the failed batch left no trace
            model.db.close()
        model = WordsPerDay(folder / "read.db", batch=batch)
        model.catch_up(log)
        assert model.table() == clean_table(folder, log)
        assert model.checkpoint(log) == last


VICTIM = textwrap.dedent("""
    import os, signal, sys
    from snippets.event_sourcing.subscriptions_checkpoint import EventLog, WordsPerDay
    def die(position):
        if position == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    WordsPerDay(sys.argv[2], batch=4).catch_up(EventLog(sys.argv[1]), on_event=die)
""")


@pytest.mark.parametrize("kill_at", [2, 7, 13])
def test_a_subscriber_killed_with_sigkill_mid_batch_restarts_from_its_own_checkpoint(
        tmp_path, kill_at):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)
    victim = subprocess.run([sys.executable, "-c", VICTIM, str(tmp_path / "events.db"),
                             str(tmp_path / "read.db"), str(kill_at)], cwd=ROOT, timeout=60,
                            check=False)
    assert victim.returncode == -signal.SIGKILL
    survivor = WordsPerDay(tmp_path / "read.db", batch=4)
    assert survivor.checkpoint(log) == (kill_at - 1) // 4 * 4
    assert survivor.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    survivor.catch_up(log)
    assert survivor.table() == clean_table(tmp_path, log)


def test_a_read_model_restored_from_a_backup_brings_its_checkpoint_back_and_catches_up(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 20)
    model = WordsPerDay(tmp_path / "read.db", batch=5)
    model.catch_up(log, until=10)
    shutil.copy(tmp_path / "read.db", tmp_path / "backup.db")
    model.catch_up(log)
    model.db.close()
    shutil.copy(tmp_path / "backup.db", tmp_path / "read.db")
    restored = WordsPerDay(tmp_path / "read.db", batch=5)
    assert restored.checkpoint(log) == 10
    restored.catch_up(log)
    assert restored.table() == clean_table(tmp_path, log)


def test_with_the_checkpoint_in_the_store_a_crash_between_commits_counts_a_batch_twice(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 8)  # 10 events
    model = CheckpointInTheStore(tmp_path / "read.db", batch=5)
    with pytest.raises(Crash):
        model.catch_up(log, on_event=crash_at(5))  # after the effects' commit
    model.catch_up(log)
    assert model.entries() == 8 + 4  # the first batch's four entries, counted again


def test_with_the_checkpoint_in_the_store_a_restored_backup_skips_events_forever(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 8)
    model = CheckpointInTheStore(tmp_path / "read.db", batch=5)
    model.catch_up(log, until=5)
    shutil.copy(tmp_path / "read.db", tmp_path / "backup.db")
    model.catch_up(log)
    model.db.close()
    shutil.copy(tmp_path / "backup.db", tmp_path / "read.db")
    restored = CheckpointInTheStore(tmp_path / "read.db", batch=5)
    assert restored.catch_up(log) == 0 and restored.entries() == 4


def test_an_event_the_read_model_cannot_apply_stops_it_with_the_batch_rolled_back(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 3)  # positions 1-4
    log.append("EntryWritten", {"day": "2025-03-09"})  # no word count: position 5
    history(log, 2)
    model = WordsPerDay(tmp_path / "read.db", batch=3)
    with pytest.raises(ProjectionError, match=r"words_per_day: cannot apply event 5 "
                                              r"\(EntryWritten\): KeyError\('words'\); batch "
                                              r"rolled back, checkpoint stays at 3"):
        model.catch_up(log)
    assert model.checkpoint(log) == 3 and model.entries() == 2
    assert sqlite3.connect(tmp_path / "read.db").execute(
        "SELECT count(*) FROM words_per_day").fetchone() == (2,)


def test_main_compares_the_two_places_for_a_checkpoint(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        ("clean run                 : [('2025-03-01', 4, 418), ('2025-03-02', 4, 422), "
         "('2025-03-03', 4, 426)]"),
        "WordsPerDay:",
        "  crashed at position 8; checkpoint now 5",
        "  after restart           : 12 of 12 entries counted, same as clean: True",
        ("  backup restored         : checkpoint 5, applied 7 events, 12 of 12 entries counted, "
         "same as clean: True"),
        "CheckpointInTheStore:",
        "  crashed at position 10; checkpoint now 5",
        "  after restart           : 17 of 12 entries counted, same as clean: False",
        ("  backup restored         : checkpoint 12, applied 0 events, 5 of 12 entries counted, "
         "same as clean: False"),
    ]


# --- bad input: a clear error, nothing processed, nothing checkpointed ---------------------

def caught_up_to(folder: Path, log: EventLog, position: int, batch: int = 5) -> WordsPerDay:
    model = WordsPerDay(folder / "read.db", batch=batch)
    model.catch_up(log, until=position)
    assert model.checkpoint(log) == position
    return model


@pytest.mark.parametrize("until", [0, 3, 6])
def test_until_below_the_checkpoint_is_refused_and_nothing_moves(tmp_path, until):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)  # 15 events
    model = caught_up_to(tmp_path, log, 7)
    before = model.table()
    with pytest.raises(ValueError, match=rf"^words_per_day: until={until} is below the "
                                         r"checkpoint 7; applied events cannot be "
                                         r"un-applied \(rebuild from 0 to go back\)$"):
        model.catch_up(log, until=until)
    assert model.checkpoint(log) == 7 and model.table() == before
    assert not model.db.in_transaction


@pytest.mark.parametrize("until", [-1, -20])
def test_a_negative_until_is_refused_and_nothing_moves(tmp_path, until):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)
    model = WordsPerDay(tmp_path / "read.db", batch=5)
    with pytest.raises(ValueError, match=rf"^until={until} is negative; positions start at 1$"):
        model.catch_up(log, until=until)
    assert model.checkpoint(log) == 0 and model.table() == []


@pytest.mark.parametrize("until", ["5", 5.0, True, [5]])
def test_an_until_that_is_not_an_int_is_refused_and_nothing_moves(tmp_path, until):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)
    model = WordsPerDay(tmp_path / "read.db", batch=5)
    with pytest.raises(TypeError, match=rf"^until must be an int position or None, got "
                                        rf"{re.escape(repr(until))}$"):
        model.catch_up(log, until=until)
    assert model.checkpoint(log) == 0 and model.table() == []


def test_until_equal_to_the_checkpoint_applies_nothing_and_until_past_the_head_stops_there(
        tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)  # 15 events
    model = caught_up_to(tmp_path, log, 7)
    assert model.catch_up(log, until=7) == 0 and model.checkpoint(log) == 7
    assert model.catch_up(log, until=8) == 1 and model.checkpoint(log) == 8
    assert model.catch_up(log, until=1_000) == 7 and model.checkpoint(log) == 15
    assert model.table() == clean_table(tmp_path, log)


@pytest.mark.parametrize("design", [WordsPerDay, CheckpointInTheStore])
@pytest.mark.parametrize("batch", [0, -1, -50])
def test_a_batch_below_one_event_is_refused_before_any_file_is_touched(tmp_path, design, batch):
    with pytest.raises(ValueError, match=rf"^batch must be at least 1 event, got {batch}$"):
        design(tmp_path / "read.db", batch=batch)
    assert not (tmp_path / "read.db").exists()


@pytest.mark.parametrize("batch", [2.5, "5", None, True])
def test_a_batch_that_is_not_an_int_is_refused(tmp_path, batch):
    with pytest.raises(TypeError, match=rf"^batch must be an int, got "
                                        rf"{re.escape(repr(batch))}$"):
        WordsPerDay(tmp_path / "read.db", batch=batch)
    assert not (tmp_path / "read.db").exists()


def test_a_batch_of_one_applies_one_event_per_transaction(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 3)  # 4 events
    model = WordsPerDay(tmp_path / "read.db", batch=1)
    commits = []
    model.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    assert model.catch_up(log) == 4 and model.checkpoint(log) == 4
    assert len(commits) == 5  # four batches, then the empty read that ends the catch-up


def test_a_checkpoint_past_the_head_of_the_log_is_refused_and_nothing_moves(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 12)  # 15 events
    model = caught_up_to(tmp_path, log, 15)
    before = model.table()
    older = EventLog(tmp_path / "older.db")  # e.g. the store restored from an older backup
    history(older, 8)  # 10 events
    with pytest.raises(CheckpointError, match=r"^words_per_day: checkpoint 15 is past the head "
                                              r"of the event log \(10\): this read model was "
                                              r"built from other events \(another store, or "
                                              r"one restored from an older backup\); rebuild "
                                              r"it instead of catching up$"):
        model.catch_up(older)
    with pytest.raises(CheckpointError, match=r"checkpoint 15 is past the head of the event "
                                              r"log \(10\)"):
        model.catch_up(older, until=20)
    assert model.checkpoint(log) == 15 and model.table() == before


@pytest.mark.parametrize(("event", "error"), [
    ({"day": "2025-03-09", "words": "many"},
     "ValueError(\"words must be a count of 0 or more, got 'many'\")"),
    ({"day": "2025-03-09", "words": -3}, "ValueError('words must be a count of 0 or more, got -3')"),
    ({"day": "2025-03-09", "words": True},
     "ValueError('words must be a count of 0 or more, got True')"),
    ({"day": None, "words": 10}, "TypeError('day must be a string, got None')"),
    ({"day": 20250309, "words": 10}, "TypeError('day must be a string, got 20250309')"),
])
def test_an_entry_with_a_malformed_field_is_a_poison_event_not_a_wrong_count(tmp_path, event,
                                                                             error):
    log = EventLog(tmp_path / "events.db")
    history(log, 3)  # positions 1-4
    log.append("EntryWritten", event)  # position 5
    model = WordsPerDay(tmp_path / "read.db", batch=3)
    with pytest.raises(ProjectionError) as raised:
        model.catch_up(log)
    assert str(raised.value) == (f"words_per_day: cannot apply event 5 (EntryWritten): {error}; "
                                 "batch rolled back, checkpoint stays at 3")
    assert model.checkpoint(log) == 3 and model.entries() == 2


def test_an_entry_of_zero_words_is_counted(tmp_path):
    log = EventLog(tmp_path / "events.db")
    log.append("EntryWritten", {"day": "2025-03-09", "words": 0})
    model = WordsPerDay(tmp_path / "read.db")
    assert model.catch_up(log) == 1 and model.table() == [("2025-03-09", 1, 0)]


# --- crashes between any two steps ----------------------------------------------------------

class DiesAfter:
    """The read model's connection, which 'dies' right after its n-th statement ran.

    It also notes each statement and, after each COMMIT, the checkpoint it committed.
    """

    def __init__(self, db: sqlite3.Connection, n: int | None = None) -> None:
        self._db, self._left = db, n
        self.statements: list[str] = []
        self.commits: list[int] = []

    def execute(self, sql: str, params=()):
        cursor = self._db.execute(sql, params)
        self.statements.append(" ".join(sql.split()[:3]))
        if sql == "COMMIT":
            self.commits.append(self._db.execute("SELECT position FROM checkpoints").fetchone()[0])
        if self._left is not None:
            self._left -= 1
            if self._left == 0:
                raise Crash(f"died after statement {len(self.statements)}")
        return cursor

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def expected_table(folder: Path, log: EventLog, until: int) -> list:
    clean = WordsPerDay(folder / f"clean-until-{until}.db", batch=1000)
    clean.catch_up(log, until=until)
    return clean.table()


def test_a_crash_after_any_statement_leaves_exactly_the_committed_batches(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 9)  # 12 events: batches of 5 end at 5, 10 and 12
    probe = WordsPerDay(tmp_path / "probe.db", batch=5)
    probe.db = DiesAfter(probe.db)
    probe.catch_up(log)
    statements, commits = probe.db.statements, probe.db.commits
    assert commits[:3] == [5, 10, 12] and set(commits[3:]) <= {12}
    for n in range(1, len(statements) + 1):
        path = tmp_path / f"read-{n}.db"
        model = WordsPerDay(path, batch=5)
        model.db = DiesAfter(model.db, n)
        with pytest.raises(Crash, match=rf"^died after statement {n}$"):
            model.catch_up(log)
        assert not model.db.in_transaction
        model.db.close()
        done = statements[:n].count("COMMIT")
        committed = commits[done - 1] if done else 0
        restarted = WordsPerDay(path, batch=5)
        assert restarted.checkpoint(log) == committed, f"after {statements[n - 1]!r}"
        assert restarted.table() == expected_table(tmp_path, log, committed)
        assert restarted.catch_up(log) == 12 - committed
        assert restarted.table() == clean_table(tmp_path, log)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from snippets.event_sourcing.subscriptions_checkpoint import EventLog, WordsPerDay

    class DiesAfter:
        def __init__(self, db, prefix, nth):
            self._db, self._prefix, self._left = db, prefix, nth
        def execute(self, sql, params=()):
            cursor = self._db.execute(sql, params)
            if " ".join(sql.split()).startswith(self._prefix):
                self._left -= 1
                if self._left == 0:
                    os.kill(os.getpid(), signal.SIGKILL)
            return cursor
        def __getattr__(self, name):
            return getattr(self._db, name)

    model = WordsPerDay(sys.argv[2], batch=5)
    model.db = DiesAfter(model.db, sys.argv[3], int(sys.argv[4]))
    model.catch_up(EventLog(sys.argv[1]))
""")


@pytest.mark.parametrize(("prefix", "nth", "checkpoint"), [
    ("INSERT INTO words_per_day", 4, 0),   # batch 1 handled (positions 1-5), checkpoint unwritten
    ("INSERT OR REPLACE INTO checkpoints", 2, 5),  # checkpoint 10 written, not committed
    ("COMMIT", 2, 10),  # batch 2 committed, batch 3 not begun
])
def test_a_sigkill_between_handling_checkpointing_and_committing_loses_and_repeats_nothing(
        tmp_path, prefix, nth, checkpoint):
    log = EventLog(tmp_path / "events.db")
    history(log, 9)  # 12 events; batch 1 (positions 1-5) holds four entries
    victim = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "events.db"),
                             str(tmp_path / "read.db"), prefix, str(nth)], cwd=ROOT,
                            timeout=60, check=False)
    assert victim.returncode == -signal.SIGKILL
    survivor = WordsPerDay(tmp_path / "read.db", batch=5)
    assert survivor.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert survivor.checkpoint(log) == checkpoint
    assert survivor.table() == expected_table(tmp_path, log, checkpoint)
    assert survivor.catch_up(log) == 12 - checkpoint
    assert survivor.table() == clean_table(tmp_path, log)


# --- two instances of the same subscriber -----------------------------------------------------

class SecondInstanceReadsFirst(EventLog):
    """An event log that lets another instance run the moment the first has read its batch."""

    def __init__(self, path: Path, other) -> None:
        super().__init__(path)
        self.other, self.outcomes = other, []

    def read_all(self, after: int, limit: int):
        rows = super().read_all(after, limit)
        if self.other is not None:
            other, self.other = self.other, None
            try:
                self.outcomes.append(other())
            except sqlite3.OperationalError as error:
                self.outcomes.append(str(error))
        return rows


def test_two_instances_of_one_subscriber_never_apply_a_batch_twice(tmp_path):
    EventLog(tmp_path / "events.db")
    second = WordsPerDay(tmp_path / "read.db", batch=5)
    second.db.close()
    second.db = sqlite3.connect(tmp_path / "read.db", isolation_level=None, timeout=0)
    log = SecondInstanceReadsFirst(tmp_path / "events.db",
                                   lambda: second.catch_up(EventLog(tmp_path / "events.db")))
    history(log, 8)  # 10 events, 8 entries
    first = WordsPerDay(tmp_path / "read.db", batch=5)
    first.catch_up(log)  # the second instance runs while the first holds its batch
    assert log.outcomes == ["database is locked"]  # it had to wait for the first one
    second.catch_up(log)
    assert first.entries() == 8 and first.checkpoint(log) == 10
    assert first.table() == clean_table(tmp_path, log)


def test_two_subscriber_processes_and_a_writer_at_once_count_every_entry_once(tmp_path):
    log = EventLog(tmp_path / "events.db")
    history(log, 20)
    script = textwrap.dedent("""
        import sqlite3, sys
        from snippets.event_sourcing.subscriptions_checkpoint import EventLog, WordsPerDay
        log = EventLog(sys.argv[1])
        log._db.execute("PRAGMA busy_timeout = 120000")
        model = WordsPerDay(sys.argv[2], batch=3)
        model.db.close()
        model.db = sqlite3.connect(sys.argv[2], isolation_level=None, timeout=120)
        while model.checkpoint(log) < int(sys.argv[3]):
            model.catch_up(log)
    """)
    WordsPerDay(tmp_path / "read.db")  # create the tables before the race
    total = 25 + 200 + 50  # 20 entries -> 25 events, then 250 appended by the writer
    readers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "events.db"),
                                 str(tmp_path / "read.db"), str(total)], cwd=ROOT)
               for _ in range(2)]
    writer = EventLog(tmp_path / "events.db")
    writer._db.execute("PRAGMA busy_timeout = 120000")
    history(writer, 200)
    for reader in readers:
        assert reader.wait(timeout=300) == 0
    model = WordsPerDay(tmp_path / "read.db")
    assert model.checkpoint(log) == total
    assert model.entries() == 220
    assert model.table() == clean_table(tmp_path, log)
