"""State checkpointed with its input offset: a restart at any point, even after SIGKILL,
ends with the totals of a run that never stopped."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.stream_processing_checkpoint import (
    CheckpointError,
    Crash,
    Event,
    HourlyWords,
    Log,
    evening,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
RAM = "/dev/shm" if Path("/dev/shm").is_dir() else None
HOUR, LATENESS = 3600, 1800
inputs = st.lists(st.builds(Event, st.sampled_from(["ana", "ben"]), st.integers(0, 8 * HOUR),
                            st.integers(0, 500)), min_size=1, max_size=40)


def outputs(processor: HourlyWords) -> tuple[list, list, list]:
    """Closed windows, too-late events, and the windows still open (the state)."""
    return processor.results(), processor.late(), processor.open_windows()


def clean_run(folder: Path, log: Log, commit_every: int) -> tuple[list, list, list]:
    clean = HourlyWords(folder / "clean.db", allowed_lateness=LATENESS, commit_every=commit_every)
    clean.run(log)
    return outputs(clean)


def crash_at(offset: int):
    def hook(current: int) -> None:
        if current == offset:
            raise Crash(f"at {offset}")
    return hook


@settings(max_examples=60, deadline=None)
@given(inputs, st.data(), st.integers(1, 7))
def test_a_restart_after_crashes_anywhere_gives_the_totals_of_an_uninterrupted_run(
        events, data, commit_every):
    crashes = data.draw(st.lists(st.integers(1, len(events)), max_size=3))
    with tempfile.TemporaryDirectory(dir=RAM) as tmp:  # many small commits: keep fsync cheap
        folder = Path(tmp)
        log = Log(folder / "input.db")
        log.append(events)
        expected = clean_run(folder, log, commit_every)
        for offset in crashes:
            processor = HourlyWords(folder / "state.db", allowed_lateness=LATENESS,
                                    commit_every=commit_every)
            try:
                processor.run(log, on_event=crash_at(offset))
            except Crash:
                assert processor.offset < offset  # the half-done batch was rolled back
            processor.close()
        restarted = HourlyWords(folder / "state.db", allowed_lateness=LATENESS,
                                commit_every=commit_every)
        restarted.run(log)
        assert outputs(restarted) == expected
        windowed = sum(words for *_, words, _ in restarted.results())
        open_words = sum(words for *_, words, _ in restarted.open_windows())
        assert windowed + open_words + sum(w for *_, w in restarted.late()) == \
            sum(e.words for e in events)  # every word is somewhere, once


def test_an_in_process_failure_leaves_memory_and_database_at_the_last_checkpoint(tmp_path):
    log = Log(tmp_path / "input.db")
    log.append(evening())
    processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=5)
    with pytest.raises(Crash):
        processor.run(log, on_event=crash_at(8))
    assert processor.offset == 5
    processor.run(log)  # the same object carries on, with nothing counted twice
    assert outputs(processor) == clean_run(tmp_path, log, 5)


VICTIM = textwrap.dedent("""
    import os, signal, sys
    from snippets.processing.stream_processing_checkpoint import HourlyWords, Log
    def die(offset):
        if offset == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    HourlyWords(sys.argv[2], allowed_lateness=1800, commit_every=4).run(Log(sys.argv[1]), die)
""")


@pytest.mark.parametrize("kill_at", [3, 6, 12])
def test_a_processor_killed_with_sigkill_mid_batch_resumes_to_the_same_totals(tmp_path, kill_at):
    log = Log(tmp_path / "input.db")
    log.append(evening())
    victim = subprocess.run([sys.executable, "-c", VICTIM, str(tmp_path / "input.db"),
                             str(tmp_path / "state.db"), str(kill_at)], cwd=ROOT, timeout=60,
                            check=False)
    assert victim.returncode == -signal.SIGKILL
    survivor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=4)
    assert survivor.offset == (kill_at - 1) // 4 * 4  # the last whole batch before the kill
    assert sqlite3.connect(tmp_path / "state.db").execute("PRAGMA integrity_check").fetchone() \
        == ("ok",)
    survivor.run(log)
    assert outputs(survivor) == clean_run(tmp_path, log, 4)


def test_a_corrupt_checkpoint_is_reported_with_its_file_and_offset_and_outputs_are_kept(tmp_path):
    log = Log(tmp_path / "input.db")
    log.append(evening())
    processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=20)
    processor.run(log)
    before = processor.results()
    processor.close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE checkpoint SET state = '{\"open\": 3}'")
    db.commit()
    with pytest.raises(CheckpointError, match=r"state\.db: checkpoint at offset 12 is corrupt"):
        HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS)
    assert db.execute("SELECT * FROM hourly_words ORDER BY start, user").fetchall() == before


def test_a_checkpoint_ahead_of_its_input_refuses_to_run_instead_of_skipping(tmp_path):
    long_log = Log(tmp_path / "input.db")
    long_log.append(evening())
    processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS)
    processor.run(long_log)
    short_log = Log(tmp_path / "replaced.db")
    short_log.append(evening()[:5])
    with pytest.raises(CheckpointError, match="checkpoint is at offset 12 but the log ends at 5"):
        processor.run(short_log)
    assert processor.offset == 12


def test_main_crashes_restarts_and_prints_the_windows_the_page_explains(capsys):
    """The page walks through this output: the crash at offset 8 mid-batch, the restart after
    offset 5, the windows per user and hour, the one event too late, the window still open."""
    main()
    assert capsys.readouterr().out == textwrap.dedent("""\
        first run : killed while processing offset 8; committed up to offset 5, 0 windows closed
        restart   : resumes after offset 5, reads 7 events
          ana 19:00  400 words in 3
          ben 19:00  300 words in 1
          ana 20:00  150 words in 2
          ben 20:00   40 words in 1
          ana 21:00   70 words in 1
          ben 21:00   10 words in 1
          ben 22:00    5 words in 1
        too late  : offset 8: ana 19:55 30 words
        still open: ana 23:00 0 words in 1
        same as a run without a crash: True, True and True
        """)


def test_a_stale_second_instance_neither_rewinds_the_checkpoint_nor_counts_twice(tmp_path):
    """Two instances on one state file (a restart while the old one still runs): the one that
    loaded an older checkpoint must catch up from the newer one, not overwrite it."""
    events = evening()
    log = Log(tmp_path / "input.db")
    log.append(events[:6])
    first = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=2)
    stale = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=2)
    assert first.run(log) == 6  # offsets 1-6 committed by the first instance
    assert stale.offset == 0  # the second one loaded before that
    assert stale.run(log) == 0  # it finds the newer checkpoint and has nothing to redo
    assert stale.offset == 6
    log.append(events[6:])
    assert first.run(log) == 6  # now the first one is behind
    assert stale.run(log) == 0
    check = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=2)
    assert check.offset == 12
    assert outputs(check) == clean_run(tmp_path, log, 2)


WORKER = textwrap.dedent("""
    import sys
    from snippets.processing.stream_processing_checkpoint import HourlyWords, Log
    HourlyWords(sys.argv[2], allowed_lateness=1800, commit_every=3).run(Log(sys.argv[1]))
    print("done", flush=True)
""")


def test_four_instances_running_at_once_on_one_state_file_count_every_event_once(tmp_path):
    hours = [Event(user, h * 600 + m * 7, m + 1) for h in range(60) for m in range(10)
             for user in ("ana", "ben")]
    log = Log(tmp_path / "input.db")
    log.append(hours)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "input.db"),
                                 str(tmp_path / "state.db")], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = [worker.communicate(timeout=300) for worker in workers]
    assert [w.returncode for w in workers] == [0] * 4, [err[-300:] for _, err in outcomes]
    survivor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=3)
    assert survivor.offset == len(hours)
    assert outputs(survivor) == clean_run(tmp_path, log, 3)
    windowed = sum(words for *_, words, _ in survivor.results())
    open_words = sum(words for *_, words, _ in survivor.open_windows())
    assert windowed + open_words + sum(w for *_, w in survivor.late()) == \
        sum(e.words for e in hours)


def test_a_window_closes_when_the_watermark_reaches_its_end_and_later_events_for_it_go_aside(
        tmp_path):
    """Windows are [start, start + 1 h); the watermark is the newest event time minus the
    allowed lateness (30 min). Each boundary, one second either side."""
    log = Log(tmp_path / "input.db")
    processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=1)

    def feed(*events: Event) -> None:
        log.append(list(events))
        processor.run(log)

    feed(Event("ana", 0, 10), Event("ana", HOUR + LATENESS - 1, 20))  # watermark 0:59:59
    assert processor.results() == []
    assert processor.open_windows() == [("ana", 0, 10, 1), ("ana", HOUR, 20, 1)]
    feed(Event("ben", HOUR + LATENESS, 7))  # watermark 1:00:00, the end of ana's first hour
    assert processor.results() == [("ana", 0, 10, 1)]
    assert processor.open_windows() == [("ana", HOUR, 20, 1), ("ben", HOUR, 7, 1)]
    feed(Event("ana", HOUR - 1, 5))  # belongs to the closed window: the side output
    assert processor.late() == [(4, "ana", HOUR - 1, 5)]
    feed(Event("ana", HOUR, 1))  # the first second of the next hour is still open
    assert processor.results() == [("ana", 0, 10, 1)]
    assert processor.open_windows() == [("ana", HOUR, 21, 2), ("ben", HOUR, 7, 1)]
    assert processor.late() == [(4, "ana", HOUR - 1, 5)]


def test_by_default_a_crash_redoes_at_most_the_100_events_of_one_batch():
    with tempfile.TemporaryDirectory(dir=RAM) as tmp:  # 250 appends, each its own commit
        folder = Path(tmp)
        log = Log(folder / "input.db")
        log.append([Event("ana", minute * 60, 1) for minute in range(250)])
        processor = HourlyWords(folder / "state.db", allowed_lateness=LATENESS)
        with pytest.raises(Crash):
            processor.run(log, on_event=crash_at(150))
        assert processor.offset == 100
        processor.close()
        restarted = HourlyWords(folder / "state.db", allowed_lateness=LATENESS)
        assert restarted.offset == 100
        assert restarted.run(log) == 150


def test_a_stale_instance_carries_on_from_the_newer_checkpoint_to_the_end_of_the_log(tmp_path):
    events = evening()
    log = Log(tmp_path / "input.db")
    log.append(events[:6])
    first = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=2)
    stale = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS, commit_every=2)
    assert first.run(log) == 6
    log.append(events[6:])
    assert stale.run(log) == 6  # skips offsets 1-6, which the first one committed, then 7-12
    assert stale.offset == 12
    assert outputs(stale) == clean_run(tmp_path, log, 2)


def test_an_instance_waits_for_a_write_lock_held_longer_than_sqlites_default_5_seconds(tmp_path):
    """Another instance may hold the lock for a long batch: the processor waits (up to a
    minute) instead of failing with "database is locked" after SQLite's default 5 s."""
    Log(tmp_path / "input.db").append(evening())
    HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS).close()  # the schema
    holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    outcome: dict[str, object] = {}

    def waiter() -> None:
        try:
            processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS)
            outcome["read"] = processor.run(Log(tmp_path / "input.db"))
            outcome["offset"] = processor.offset
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(6)  # the adversary's long transaction: the hold, not a wait for the thread
    holder.execute("COMMIT")
    thread.join(timeout=120)
    assert outcome == {"read": 12, "offset": 12}


def test_a_restart_with_nothing_new_in_the_log_reads_nothing_and_is_no_error(tmp_path):
    """A checkpoint at the very end of its log is current, not ahead of a replaced input."""
    log = Log(tmp_path / "input.db")
    log.append(evening())
    processor = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS)
    assert processor.run(log) == 12
    assert processor.run(log) == 0
    processor.close()
    restarted = HourlyWords(tmp_path / "state.db", allowed_lateness=LATENESS)
    assert restarted.run(log) == 0
    assert restarted.offset == 12
    assert outputs(restarted) == clean_run(tmp_path, log, 100)
