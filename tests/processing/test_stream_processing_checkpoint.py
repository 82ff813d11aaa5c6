"""State checkpointed with its input offset: a restart at any point, even after SIGKILL,
ends with the totals of a run that never stopped."""

from __future__ import annotations

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


def clean_run(folder: Path, log: Log, commit_every: int) -> tuple[list, list]:
    clean = HourlyWords(folder / "clean.db", allowed_lateness=LATENESS, commit_every=commit_every)
    clean.run(log)
    return clean.results(), clean.late()


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
        assert (restarted.results(), restarted.late()) == expected
        windowed = sum(words for *_, words, _ in restarted.results())
        open_words = sum(cell[0] for cell in restarted._open.values())
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
    assert (processor.results(), processor.late()) == clean_run(tmp_path, log, 5)


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
    assert (survivor.results(), survivor.late()) == clean_run(tmp_path, log, 4)


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


def test_main_crashes_restarts_and_matches_a_clean_run(capsys):
    main()
    out = capsys.readouterr().out
    assert "killed while processing offset 8; committed up to offset 5" in out
    assert "restart   : resumes after offset 5, reads 7 events" in out
    assert "same as a run without a crash: True and True" in out


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
    assert (check.results(), check.late()) == clean_run(tmp_path, log, 2)


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
    assert (survivor.results(), survivor.late()) == clean_run(tmp_path, log, 3)
    windowed = sum(words for *_, words, _ in survivor.results())
    open_words = sum(cell[0] for cell in survivor._open.values())
    assert windowed + open_words + sum(w for *_, w in survivor.late()) == \
        sum(e.words for e in hours)
