"""A checkpoint committed with the read model survives crashes mid-batch, SIGKILL and a restored
backup; a checkpoint kept in the event store does not."""

from __future__ import annotations

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
    out = capsys.readouterr().out
    assert "crashed at position 8; checkpoint now 5" in out
    assert "backup restored         : checkpoint 5, applied 7 events, 12 of 12 entries " \
           "counted, same as clean: True" in out
    assert "after restart           : 17 of 12 entries counted, same as clean: False" in out
    assert "backup restored         : checkpoint 12, applied 0 events, 5 of 12 entries" in out
