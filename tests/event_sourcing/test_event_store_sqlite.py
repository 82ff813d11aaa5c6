"""The SQLite store's own behaviour and the Goal aggregate rebuilt from its events.

The contract shared with PostgreSQL is in test_event_store.py.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from snippets.event_sourcing.event_store_sqlite import (
    CorruptEventError,
    Goal,
    GoalRuleError,
    NewEvent,
    SQLiteEventStore,
    UnknownEventTypeError,
    VersionConflictError,
    main,
)


@pytest.fixture
def store(tmp_path):
    with SQLiteEventStore(tmp_path / "coaching.db") as opened:
        yield opened


def test_a_goal_is_rebuilt_from_its_events_exactly_as_it_was_left(store):
    goal = Goal("g1")
    goal.set("Run 5 km", target=2)
    goal.log_session("e1")
    assert [e.type for e in goal.save(store)] == ["GoalSet", "SessionLogged"]
    again = Goal.load(store, "g1")
    assert (again.title, again.target, again.entries, again.version, again.achieved) == (
        "Run 5 km", 2, ["e1"], 2, False)
    again.log_session("e2")
    recorded = again.save(store)
    assert [(e.version, e.type) for e in recorded] == [(3, "SessionLogged"), (4, "GoalAchieved")]
    assert Goal.load(store, "g1").achieved is True


@pytest.mark.parametrize(("setup", "command", "message"), [
    ([], lambda g: g.log_session("e1"), "goal-g1 is not set: it takes no more sessions"),
    ([("set", "Run", 1)], lambda g: g.set("Swim", 1), "goal-g1 is already set: 'Run'"),
    ([], lambda g: g.set("Run", 0), "target must be at least 1 session, not 0"),
    ([("set", "Run", 3), ("log", "e1")], lambda g: g.log_session("e1"),
     "entry e1 is already counted for goal-g1"),
    ([("set", "Run", 1), ("log", "e1")], lambda g: g.log_session("e2"),
     "goal-g1 is achieved: it takes no more sessions"),
])
def test_a_refused_command_says_why_and_records_nothing(store, setup, command, message):
    goal = Goal("g1")
    for step in setup:
        goal.set(*step[1:]) if step[0] == "set" else goal.log_session(step[1])
    if goal.pending:
        goal.save(store)
    before = store.last_position()
    goal = Goal.load(store, "g1")
    with pytest.raises(GoalRuleError, match=message):
        command(goal)
    assert goal.pending == []
    assert store.last_position() == before


def test_two_agents_logging_the_same_entry_count_it_once(store):
    goal = Goal("g1")
    goal.set("Write", target=5)
    goal.save(store)
    first, second = Goal.load(store, "g1"), Goal.load(store, "g1")
    first.log_session("e1")
    second.log_session("e1")
    first.save(store)
    with pytest.raises(VersionConflictError, match="expected version 1, but it is at version 2"):
        second.save(store)
    with pytest.raises(GoalRuleError, match="already counted"):
        Goal.load(store, "g1").log_session("e1")
    assert Goal.load(store, "g1").entries == ["e1"]


def test_an_unknown_event_type_on_rehydration_names_the_stream_and_position(store):
    store.append("journal-ana", [NewEvent("EntryWritten", {"entry_id": "e1"})], expected_version=0)
    store.append("goal-g1", [NewEvent("GoalSet", {"title": "Run", "target": 2}),
                             NewEvent("GoalRenamed", {"title": "Run far"})], expected_version=0)
    with pytest.raises(UnknownEventTypeError, match=r"stream 'goal-g1' version 2 \(position 3\): "
                                                    "unknown event type 'GoalRenamed' for Goal"):
        Goal.load(store, "g1")


def test_an_append_through_the_same_store_wakes_its_subscriber_without_polling(tmp_path):
    with SQLiteEventStore(tmp_path / "c.db", poll_interval=600) as store:
        store.append("goal-g1", [NewEvent("GoalSet", {"title": "Run", "target": 1})],
                     expected_version=0)
        got, caught_up = [], threading.Event()

        def follow() -> None:
            for event in store.subscribe():
                got.append(event.position)
                caught_up.set()
                if len(got) == 2:
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert caught_up.wait(10)
        store.append("goal-g1", [NewEvent("SessionLogged", {"entry_id": "e1"})], expected_version=1)
        thread.join(10)  # a 600 s poll would leave it alive: the append woke it
        assert not thread.is_alive() and got == [1, 2]


def test_the_database_is_in_wal_mode_so_readers_do_not_block_the_writer(store, tmp_path):
    with sqlite3.connect(tmp_path / "coaching.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_store_opened_while_another_connection_writes_waits_for_wal_mode(tmp_path):
    """Switching a new file to WAL needs it to itself, and SQLite refuses at once,
    busy timeout or not, while another connection is mid-write (two stores creating
    the schema at the same moment). Seen in CI as 'database is locked' from one of
    four concurrent writers. The store retries the switch until the writer is done."""
    path = tmp_path / "coaching.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other (x)")
    done = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    done.start()
    try:
        with SQLiteEventStore(path) as store:
            assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            store.append("goal-1", [NewEvent("GoalSet", {"title": "Write daily"})],
                         expected_version=0)
    finally:
        done.join()
        writer.close()
    with sqlite3.connect(path) as conn:  # the other writer's work is kept as well
        assert conn.execute("SELECT count(*) FROM other").fetchone() == (0,)


def test_main_prints_the_conflict_the_refused_retry_the_order_and_the_live_event(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("second agent   : stream 'goal-ana-writing': expected version 3, "
                        "but it is at version 5; nothing was appended")
    assert lines[1] == "its retry      : refused, entry e3 is already counted for goal-ana-writing"
    assert lines[2] == "rehydrated     : goal-ana-writing v5, 3/3 sessions, achieved=True"
    assert len([line for line in lines if line.startswith("  ")]) == 8
    assert lines[-3:] == ["subscriber     : backlog #7 goal-ana-writing SessionLogged",
                          "subscriber     : backlog #8 goal-ana-writing GoalAchieved",
                          "subscriber     : live    #9 journal-ana EntryWritten"]


@pytest.mark.parametrize(("column", "value", "detail"), [
    ("data", '"just a string"', "expected a JSON object, found str"),
    ("data", "[1, 2]", "expected a JSON object, found list"),
    ("recorded_at", "yesterday evening", "Invalid isoformat string"),
])
def test_a_stored_row_that_is_valid_sqlite_but_not_an_event_is_reported(store, tmp_path, column,
                                                                       value, detail):
    store.append("goal-g1", [NewEvent("GoalSet", {"title": "Run", "target": 1})],
                 expected_version=0)
    with sqlite3.connect(tmp_path / "coaching.db") as conn:
        conn.execute(f"UPDATE events SET {column} = ?", (value,))
    with pytest.raises(CorruptEventError, match=r"stream 'goal-g1' version 1 \(position 1\): "
                                                f"stored event 'GoalSet' is corrupt: .*{detail}"):
        store.read_stream("goal-g1")
