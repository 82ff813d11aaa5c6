"""Temporal queries: as of a position or a time, on the page's events and the real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.event_sourcing.event_projection_temporal import (
    GoalState,
    RecordedEvent,
    as_of,
    goal_board,
    main,
)
from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore

T0 = datetime(2025, 3, 3, 20, 0, tzinfo=UTC)


def event(position: int, type_: str = "SessionLogged", minutes: int = 0, **data) -> RecordedEvent:
    return RecordedEvent(position, "goal-a", type_, data, T0 + timedelta(minutes=minutes))


def test_as_of_a_position_is_the_prefix_up_to_it():
    events = [event(1, "GoalSet", title="A", target=3), event(2), event(3)]
    assert goal_board(as_of(events, position=2)) == {"goal-a": GoalState("A", 3, 1)}
    assert as_of(events, position=0) == [] and as_of(events, position=99) == events


def test_as_of_a_time_includes_events_recorded_exactly_then_and_nothing_after():
    events = [event(1, "GoalSet", 0, title="A", target=1), event(2, minutes=5),
              event(3, "GoalAchieved", 10)]
    assert [e.position for e in as_of(events, at=T0 + timedelta(minutes=5))] == [1, 2]
    assert goal_board(as_of(events, at=T0 + timedelta(hours=1)))["goal-a"].achieved


def test_a_writer_whose_clock_ran_behind_cannot_leave_a_hole_in_the_past():
    events = [event(1, "GoalSet", 0, title="A", target=3), event(2, minutes=20),
              event(3, minutes=10)]  # position 3 was stamped by a clock 10 minutes slow
    assert [e.position for e in as_of(events, at=T0 + timedelta(minutes=15))] == [1]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of position= or at="),
    ({"position": 1, "at": T0}, "give exactly one of position= or at="),
    ({"at": datetime(2025, 3, 3, 20, 0)}, "at=2025-03-03T20:00:00 has no time zone"),
])
def test_an_ambiguous_question_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        as_of([], **kwargs)


def test_sessions_for_an_unknown_goal_are_ignored_not_invented():
    events = [event(1), event(2, "GoalAchieved")]
    assert goal_board(events) == {}


@given(st.lists(st.sampled_from(["SessionLogged", "GoalAchieved"]), max_size=30),
       st.integers(0, 31))
def test_the_state_as_of_p_is_the_fold_of_the_first_p_events(types, p):
    events = [event(1, "GoalSet", title="A", target=5)] + [
        event(i, t) for i, t in enumerate(types, 2)]
    assert goal_board(as_of(events, position=p)) == goal_board(events[:p])


def test_temporal_queries_work_on_the_real_stores_global_order(tmp_path):
    clock = iter(T0 + timedelta(hours=h) for h in range(10))
    with SQLiteEventStore(tmp_path / "e.db", clock=lambda: next(clock)) as store:
        store.append("goal-a", [NewEvent("GoalSet", {"title": "A", "target": 2})],
                     expected_version=0)
        store.append("goal-a", [NewEvent("SessionLogged", {})], expected_version=1)
        store.append("goal-a", [NewEvent("SessionLogged", {})], expected_version=2)
        events = store.read_all()
    assert goal_board(as_of(events, at=T0 + timedelta(hours=1, minutes=30))) == {
        "goal-a": GoalState("A", 2, 1)}


def test_main_answers_now_at_a_time_and_as_the_coach_saw_it(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        "now                    : goal-read 2/5, goal-run 3/3 done",
        "Thursday 12:00 UTC     : goal-read 1/5, goal-run 2/3",
        "what the coach saw     : goal-read 1/5, goal-run 1/3 -> 'Good start.'",
    ]
