"""Snapshots: taken every N events, equal to a full replay, and never misread when stale."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing import event_store_postgres, event_store_sqlite
from snippets.event_sourcing.snapshot_management import (
    EventLog,
    GoalProgress,
    NewEvent,
    Repository,
    Snapshot,
    SnapshotStore,
    main,
)


@pytest.fixture
def conn():
    connection = sqlite3.connect(":memory:")
    yield connection
    connection.close()


def sessions(days: list[int], minutes: int = 30) -> list[NewEvent]:
    return [NewEvent("SessionLogged", {"day": d, "minutes": minutes}) for d in days]


def state(goal: GoalProgress) -> tuple:
    return (goal.version, *goal.to_state().values())


def test_a_snapshot_is_taken_once_a_load_replays_every_n_events_and_then_used(conn):
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    repo = Repository(events, snapshots, every=10)
    events.append("goal-g", sessions(list(range(9))), expected_version=0)
    assert repo.load("g").replayed == 9 and snapshots.get("goal-g") is None
    events.append("goal-g", sessions([9, 10]), expected_version=9)
    first = repo.load("g")
    assert (first.snapshot_version, first.replayed) == (None, 11)
    assert snapshots.get("goal-g").version == 11
    events.append("goal-g", sessions([12]), expected_version=11)
    second = repo.load("g")
    assert (second.snapshot_version, second.replayed, second.ignored) == (11, 1, "")
    assert state(second.goal) == (12, 12, 360, 1, 11, 12)


@settings(max_examples=60, deadline=None)
@given(days=st.lists(st.integers(0, 40), min_size=1, max_size=60).map(sorted),
       cuts=st.lists(st.integers(1, 60), max_size=4), every=st.integers(1, 12))
def test_loading_through_snapshots_always_equals_a_full_replay(days, cuts, every):
    with sqlite3.connect(":memory:") as conn:
        events, snapshots = EventLog(conn), SnapshotStore(conn)
        repo, plain = Repository(events, snapshots, every=every), Repository(events, None)
        version = 0
        for cut in sorted({min(c, len(days)) for c in cuts} | {len(days)}):
            if cut > version:
                events.append("goal-g", sessions(days[version:cut]), expected_version=version)
                version = cut
            assert state(repo.load("g").goal) == state(plain.load("g").goal)


def test_a_snapshot_written_by_older_code_is_ignored_rebuilt_and_replaced(conn):
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    events.append("goal-g", sessions([1, 2, 3]), expected_version=0)
    snapshots.put(Snapshot("goal-g", 3, 1, {"sessions": 3, "minutes": 90}))
    loaded = Repository(events, snapshots, every=100).load("g")
    assert loaded.ignored == "schema 1, code is at 2" and loaded.snapshot_version is None
    assert state(loaded.goal) == (3, 3, 90, 3, 3, 3)
    assert snapshots.get("goal-g") == Snapshot("goal-g", 3, 2, loaded.goal.to_state())


@pytest.mark.parametrize(("bad", "reason"), [
    (Snapshot("goal-g", 9, 2, {"sessions": 9}), "v9 is past the stream's end"),
    (Snapshot("goal-g", 2, 2, {"sessions": 2}), "state lacks 'minutes'"),
])
def test_a_snapshot_past_the_end_or_missing_fields_is_ignored_never_misread(conn, bad, reason):
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    events.append("goal-g", sessions([1, 2, 3]), expected_version=0)
    snapshots.put(bad)
    loaded = Repository(events, snapshots).load("g")
    assert loaded.ignored == reason
    assert state(loaded.goal) == (3, 3, 90, 3, 3, 3)
    assert snapshots.get("goal-g").version == 3  # replaced by a good one


def test_a_snapshot_that_does_not_decode_is_a_cache_miss_not_an_error(conn):
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    events.append("goal-g", sessions([1]), expected_version=0)
    conn.execute("INSERT INTO snapshots VALUES ('goal-g', 1, 2, '{not json')")
    loaded = Repository(events, snapshots).load("g")
    assert loaded.ignored.startswith("does not decode: ") and loaded.goal.sessions == 1
    assert snapshots.get("goal-g").state["sessions"] == 1


def test_an_older_snapshot_never_replaces_a_newer_one_unless_told_to(conn):
    snapshots = SnapshotStore(conn)
    snapshots.put(Snapshot("goal-g", 10, 2, {"n": 10}))
    snapshots.put(Snapshot("goal-g", 5, 2, {"n": 5}))
    assert snapshots.get("goal-g").version == 10
    snapshots.put(Snapshot("goal-g", 5, 2, {"n": 5}), replace=True)
    assert snapshots.get("goal-g").version == 5


def test_an_empty_stream_loads_as_a_new_goal_and_writes_no_snapshot(conn):
    repo = Repository(EventLog(conn), SnapshotStore(conn), every=1)
    loaded = repo.load("nobody")
    assert state(loaded.goal) == (0, 0, 0, 0, 0, -1) and loaded.replayed == 0
    assert repo.snapshots.get("goal-nobody") is None


def test_the_cut_down_log_refuses_a_stale_expected_version(conn):
    events = EventLog(conn)
    events.append("goal-g", sessions([1]), expected_version=0)
    with pytest.raises(RuntimeError, match="goal-g: expected version 0, at 1"):
        events.append("goal-g", sessions([2]), expected_version=0)
    assert len(events.read_stream("goal-g")) == 1


def test_other_events_types_only_move_the_version(conn):
    events = EventLog(conn)
    events.append("goal-g", [NewEvent("GoalSet", {"title": "Run"})] + sessions([4]),
                  expected_version=0)
    goal = Repository(events, None).load("g").goal
    assert state(goal) == (2, 1, 30, 1, 1, 4)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_repository_works_on_the_event_store_pages_stores(kind, tmp_path, request):
    if kind == "sqlite":
        store = event_store_sqlite.SQLiteEventStore(tmp_path / "e.db")
        module = event_store_sqlite
    else:
        store = event_store_postgres.PostgresEventStore(request.getfixturevalue("postgres_db"))
        module = event_store_postgres
    with store:
        store.append("goal-g", [module.NewEvent("SessionLogged", {"day": d, "minutes": 10})
                                for d in range(150)], expected_version=0)
        with sqlite3.connect(":memory:") as conn:
            repo = Repository(store, SnapshotStore(conn), every=100)
            assert repo.load("g").replayed == 150
            store.append("goal-g", [module.NewEvent("SessionLogged", {"day": 150, "minutes": 10})],
                         expected_version=150)
            loaded = repo.load("g")
            assert (loaded.snapshot_version, loaded.replayed) == (150, 1)
            assert state(loaded.goal) == (151, 151, 1510, 151, 151, 150)


def test_main_shows_the_same_state_whichever_way_it_was_built(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    states = {line.split("-> ")[1] for line in lines if "->" in line}
    assert states == {"v230: 230 sessions, 6900 min, streak 55, best 90",
                      "v250: 250 sessions, 7490 min, streak 75, best 90"}
    assert "snapshot v230   +  20 replayed" in lines[1]
    assert lines[3].strip() == "(snapshot ignored: schema 1, code is at 2)"
    assert "snapshot v250   +   0 replayed" in lines[4]
    assert lines[6].strip() == "(snapshot ignored: v400 is past the stream's end)"
    assert lines[8].strip().startswith("(snapshot ignored: does not decode:")


@pytest.mark.parametrize(("field", "value"), [
    ("sessions", "3"), ("minutes", 90.5), ("streak", True), ("best_streak", None),
    ("last_day", [3]),
])
def test_a_snapshot_whose_state_has_a_wrong_type_is_ignored_never_misread(conn, field, value):
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    events.append("goal-g", sessions([1, 2, 3]), expected_version=0)
    good = {"sessions": 2, "minutes": 60, "streak": 2, "best_streak": 2, "last_day": 2}
    snapshots.put(Snapshot("goal-g", 2, 2, {**good, field: value}))
    loaded = Repository(events, snapshots).load("g")
    assert loaded.ignored == f"state has {field!r} = {value!r}, not a whole number"
    assert loaded.snapshot_version is None and loaded.replayed == 3
    assert state(loaded.goal) == (3, 3, 90, 3, 3, 3)
    assert snapshots.get("goal-g") == Snapshot("goal-g", 3, 2, loaded.goal.to_state())


def test_events_restored_from_an_older_backup_and_appended_again_are_not_detected(conn):
    """The check has a limit: once the stream grows back past the snapshot's version, a
    snapshot of the lost history looks valid. Restoring events means dropping snapshots."""
    events, snapshots = EventLog(conn), SnapshotStore(conn)
    repo = Repository(events, snapshots, every=5)
    events.append("goal-g", sessions([1, 2, 3, 4, 5, 6]), expected_version=0)
    assert repo.load("g").goal.best_streak == 6  # and a snapshot at v6
    with conn:  # the event store is restored from a backup taken at v2
        conn.execute("DELETE FROM events WHERE version > 2")
    events.append("goal-g", sessions([10, 20, 30, 40]), expected_version=2)
    assert state(Repository(events, None).load("g").goal) == (6, 6, 180, 1, 2, 40)
    misread = repo.load("g")
    assert misread.snapshot_version == 6 and misread.ignored == ""
    assert misread.goal.best_streak == 6  # the lost history's answer, not the events'
    conn.execute("DELETE FROM snapshots")  # what a restore must do
    assert state(repo.load("g").goal) == (6, 6, 180, 1, 2, 40)
