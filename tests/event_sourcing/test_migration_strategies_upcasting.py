"""Upcasting on read: every stored generation reads as the current one; nothing is dropped
unless it was retired on purpose, and what cannot be read says where it is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore
from snippets.event_sourcing.migration_strategies_upcasting import (
    CURRENT,
    MemoryStore,
    UpcastError,
    UpcastingReader,
    main,
    upcast,
)

V3 = {"schema_version": 3, "title": "Run", "target": {"sessions": 3, "period": "week"}}


@pytest.mark.parametrize(("type_", "data"), [
    ("GoalCreated", {"title": "Run", "target": "3/week"}),
    ("GoalSet", {"title": "Run", "target": " 3 / week "}),
    ("GoalSet", {"schema_version": 2, "title": "Run", "sessions_per_week": 3}),
    ("GoalSet", V3),
])
def test_every_generation_of_goal_set_reads_as_version_3(type_, data):
    event = MemoryStore([("goal-run", type_, data)]).events[0]
    assert upcast(event).type == "GoalSet" and upcast(event).data == V3


@given(st.text(min_size=1, max_size=20), st.integers(0, 10**6))
def test_upcasting_any_v1_goal_keeps_its_title_and_target(title, sessions):
    event = MemoryStore([("goal-x", "GoalCreated",
                          {"title": title, "target": f"{sessions}/week"})]).events[0]
    assert upcast(event).data == {"schema_version": 3, "title": title,
                                  "target": {"sessions": sessions, "period": "week"}}


def test_old_sessions_get_unknown_minutes_not_zero():
    event = MemoryStore([("goal-run", "SessionLogged", {"entry_id": "e1"})]).events[0]
    assert upcast(event).data == {"schema_version": 2, "entry_id": "e1", "minutes": None}


def test_the_stored_event_is_never_modified():
    store = MemoryStore([("goal-run", "GoalCreated", {"title": "Run", "target": "3/week"})])
    UpcastingReader(store).read_all()
    assert store.events[0].type == "GoalCreated"
    assert store.events[0].data == {"title": "Run", "target": "3/week"}


def test_retired_types_are_skipped_and_positions_keep_their_gaps():
    store = MemoryStore([("goal-run", "GoalSet", V3), ("goal-run", "MoodNoted", {}),
                         ("goal-run", "SessionLogged", {"schema_version": 2, "entry_id": "e",
                                                        "minutes": 5})])
    reader = UpcastingReader(store)
    assert [(e.position, e.version) for e in reader.read_stream("goal-run")] == [(1, 1), (3, 3)]
    assert [e.position for e in reader.read_stream("goal-run", from_version=2)] == [3]


@pytest.mark.parametrize(("type_", "data", "message"), [
    ("GoalRenamed", {}, "unknown event type 'GoalRenamed'"),
    ("GoalSet", {"schema_version": 4, "title": "x"}, "GoalSet schema_version 4 is not one this "
                                                      r"code reads \(1 to 3\); is newer code"),
    ("GoalSet", {"schema_version": "2"}, "GoalSet schema_version '2' is not one"),
    ("GoalSet", {"schema_version": 0}, "GoalSet schema_version 0 is not one"),
    ("GoalSet", {"title": "Stretch", "target": "daily"},
     "cannot upcast GoalSet v1: target 'daily' is not '<n>/week'"),
    ("GoalSet", {"target": "3/week"}, "cannot upcast GoalSet v1: 'title'"),
    ("GoalSet", {"schema_version": 2, "title": "x"}, "cannot upcast GoalSet v2: 'sessions_per"),
])
def test_an_event_that_cannot_be_read_names_its_stream_and_position(type_, data, message):
    store = MemoryStore([("goal-a", "GoalSet", V3), ("goal-b", type_, data)])
    with pytest.raises(UpcastError, match=r"stream 'goal-b' version 1 \(position 2\): " + message):
        UpcastingReader(store).read_all()


def test_the_reader_wraps_the_real_store_and_its_global_order(tmp_path):
    with SQLiteEventStore(tmp_path / "e.db") as store:
        store.append("goal-run", [NewEvent("GoalCreated", {"title": "Run", "target": "2/week"}),
                                  NewEvent("SessionLogged", {"entry_id": "e1"})],
                     expected_version=0)
        events = UpcastingReader(store).read_stream("goal-run")
        assert [(e.type, e.data["schema_version"]) for e in events] == [
            ("GoalSet", CURRENT["GoalSet"]), ("SessionLogged", CURRENT["SessionLogged"])]
        assert events[0].recorded_at == store.read_all()[0].recorded_at


def test_main_reads_three_generations_and_stops_at_the_unreadable_one(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all(" GoalSet " in line or " SessionLogged " in line
                                   for line in lines[:5])
    assert "#3" not in "".join(lines)  # MoodNoted was retired
    assert lines[-1] == ("error: stream 'goal-old' version 1 (position 7): cannot upcast GoalSet "
                         "v1: target 'daily' is not '<n>/week'")
