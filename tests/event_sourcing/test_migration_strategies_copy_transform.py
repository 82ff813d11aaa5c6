"""Copy-and-transform: the split is exact, the copy resumes after a crash, and an
event nobody planned for stops the copy where it is."""

from __future__ import annotations

import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore
from snippets.event_sourcing.migration_strategies_copy_transform import (
    MemorySource,
    Migration,
    TargetStore,
    main,
)

ROOT = Path(__file__).resolve().parents[2]


def legacy(source: MemorySource, users: int = 3, goals: int = 2, sessions: int = 4) -> None:
    for u in range(users):
        for g in range(goals):
            source.add(f"user-u{u}", "GoalCreated", goal_id=f"u{u}g{g}", title="T", target=3)
        for s in range(sessions):
            source.add(f"user-u{u}", "EntryWritten", entry_id=f"u{u}e{s}", words=s)
            source.add(f"user-u{u}", "SessionLogged", goal_id=f"u{u}g{s % goals}",
                       entry_id=f"u{u}e{s}")
            source.add(f"user-u{u}", "MoodNoted", mood="ok")


def test_the_split_puts_each_goal_in_its_own_stream_in_the_original_order():
    source = MemorySource()
    legacy(source)
    target = TargetStore(sqlite3.connect(":memory:"))
    migration = Migration(source, target, batch_size=5)
    migration.run()
    counts = migration.verify()
    assert counts["journal-u0"] == 4 and counts["goal-u0g0"] == 3 and counts["goal-u0g1"] == 3
    assert not any("user-" in s for s in counts)
    events = target.read_all()
    for stream in counts:
        versions = [e.version for e in events if e.stream == stream]
        assert versions == list(range(1, len(versions) + 1))
    goal = [e for e in events if e.stream == "goal-u1g0"]
    assert [e.type for e in goal] == ["GoalSet", "SessionLogged", "SessionLogged"]
    assert "goal_id" not in goal[0].data


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 12), stops=st.lists(st.integers(1, 40), max_size=4))
def test_stopping_and_resuming_anywhere_gives_the_same_new_store(batch, stops):
    source = MemorySource()
    legacy(source)
    straight = TargetStore(sqlite3.connect(":memory:"))
    Migration(source, straight).run()
    target = TargetStore(sqlite3.connect(":memory:"))
    for stop in stops:  # a new process each time: only the database carries over
        for _ in range(stop):
            Migration(source, target, batch_size=batch).run_batch()
    Migration(source, target, batch_size=batch).run()
    assert target.read_all() == straight.read_all()


def test_an_event_with_no_rule_rolls_back_its_batch_and_names_its_position():
    source = MemorySource()
    source.add("user-ana", "EntryWritten", entry_id="e1", words=1)
    source.add("user-ana", "ReminderSent", at="21:00")
    source.add("user-ana", "SessionLogged", entry_id="e1")  # no goal_id either
    target = TargetStore(sqlite3.connect(":memory:"))
    migration = Migration(source, target, batch_size=10)
    with pytest.raises(ValueError, match=r"position 2 \(user-ana\): no rule for 'ReminderSent'"):
        migration.run()
    assert target.checkpoint() == 0 and target.read_all() == []
    migration.retired.add("ReminderSent")
    with pytest.raises(ValueError, match=r"position 3 \(user-ana\): SessionLogged has no goal_id"):
        migration.run()
    assert target.read_all() == []


def test_verify_catches_a_new_store_that_differs_from_the_old_one():
    source = MemorySource()
    legacy(source, users=1)
    target = TargetStore(sqlite3.connect(":memory:"))
    migration = Migration(source, target)
    migration.run()
    target.conn.execute("DELETE FROM events WHERE position = 3")
    with pytest.raises(AssertionError, match="migration differs: 10 events expected, 9 found"):
        migration.verify()


def test_new_events_appended_to_the_old_store_are_picked_up_by_the_next_run(tmp_path):
    with SQLiteEventStore(tmp_path / "old.db") as old:
        old.append("user-ana", [NewEvent("EntryWritten", {"entry_id": "e1"})], expected_version=0)
        target = TargetStore(sqlite3.connect(":memory:"))
        migration = Migration(old, target)
        migration.run()
        old.append("user-ana", [NewEvent("GoalSet", {"goal_id": "g", "title": "T"})],
                   expected_version=1)
        migration.run()  # the catch-up before the cut-over
        assert migration.verify() == {"goal-g": 1, "journal-ana": 1}


VICTIM = textwrap.dedent("""
    import sqlite3, sys, time
    from snippets.event_sourcing import migration_strategies_copy_transform as m
    from tests.event_sourcing.test_migration_strategies_copy_transform import legacy

    class Stalling(m.Migration):
        def transform(self, event):
            if event.position == 20:
                print("mid-batch", flush=True)
                time.sleep(600)  # killed here, with half a batch inserted
            return super().transform(event)

    source = m.MemorySource()
    legacy(source)
    Stalling(source, m.TargetStore(sqlite3.connect(sys.argv[1])), batch_size=8).run()
""")


def test_a_migration_killed_mid_batch_resumes_without_loss_or_duplicates(tmp_path):
    path = tmp_path / "new.db"
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([victim.stdout], [], [], 60)
        assert ready and victim.stdout.readline() == "mid-batch\n"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait(10)
        victim.stdout.close()
    source = MemorySource()
    legacy(source)
    target = TargetStore(sqlite3.connect(path))
    assert target.checkpoint() == 16  # two whole batches of 8
    migration = Migration(source, target)
    migration.run()
    assert migration.verify()["journal-u2"] == 4


def test_main_fails_on_the_unplanned_event_then_resumes_and_verifies(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "batch 1        : checkpoint 3",
        "batch 2 failed : position 5 (user-ana): no rule for 'ReminderSent'; checkpoint still 3",
        "resumed        : checkpoint 9",
        "verified       : {'goal-read': 2, 'goal-run': 2, 'journal-ana': 2, 'journal-ben': 1}",
    ]
    assert len(lines) == 11
