"""Validation at the boundary: every offending field is listed with its reason, hostile input
is refused before it costs anything, and a valid event is never rejected."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_design.event_structure_validation import (
    MAX_BYTES,
    InvalidEvent,
    main,
    parse_event,
)


def goal_set(**changes) -> dict:
    event = {"specversion": "1.0", "id": "evt-1", "source": "/goals", "type": "coaching.goal.set",
             "time": "2026-05-04T07:00:00Z",
             "data": {"goal_id": "g-1", "title": "Run 5 km", "sessions_per_week": 3}}
    return {**event, **changes}


def refused(event: object) -> dict[str, str]:
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    problems = dict(caught.value.problems)
    assert len(problems) == len(caught.value.problems), "one line per field"
    for field, reason in problems.items():
        assert f"  {field}: {reason}" in str(caught.value)
    return problems


def test_a_valid_event_comes_back_as_parsed():
    assert parse_event(json.dumps(goal_set()).encode()) == goal_set()


def test_every_offending_field_is_listed_at_once_with_its_reason():
    problems = refused(goal_set(specversion="0.3", id="", time="yesterday", data={
        "title": "", "sessions_per_week": 30, "goal_id": 7}))
    assert set(problems) == {"specversion", "id", "time", "data.title", "data.sessions_per_week",
                             "data.goal_id"}
    assert problems["time"] == "'yesterday' is not a 'date-time'"
    assert problems["data.sessions_per_week"] == "30 is greater than the maximum of 14"
    assert problems["data.goal_id"] == "7 is not of type 'string'"


def test_missing_attributes_and_fields_are_named_one_by_one():
    event = goal_set(data={"title": "Run"})
    del event["id"], event["time"]
    problems = refused(event)
    assert problems == {"id": "is required", "time": "is required",
                        "data.goal_id": "is required", "data.sessions_per_week": "is required"}


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"type": "GoalSet"}, "type", "does not match"),
    ({"type": "coaching.goal.deleted"}, "type",
     "no schema for 'coaching.goal.deleted'; known: coaching.entry.written, coaching.goal.set"),
    ({"data": ["g-1"]}, "data", "is not of type 'object'"),
    ({"datacontenttype": "text/plain"}, "datacontenttype", "'application/json' was expected"),
    ({"time": "2026-05-04T07:00:00"}, "time", "is not a 'date-time'"),
    ({"time": "2026-02-30T07:00:00Z"}, "time", "is not a 'date-time'"),
    ({"time": "2026-05-04"}, "time", "is not a 'date-time'"),
    ({"time": 1714806000}, "time", "is not of type 'string'"),
])
def test_a_bad_envelope_attribute_is_named_with_its_reason(change, field, reason):
    problems = refused(goal_set(**change))
    assert reason in problems[field]


def test_entry_fields_are_checked_against_the_entry_schema():
    problems = refused(goal_set(type="coaching.entry.written", data={
        "entry_id": "e-1", "author_id": "ana", "text": "x" * 10_001, "mood": "meh",
        "tags": ["a"] * 21}))
    assert set(problems) == {"data.text", "data.mood", "data.tags"}
    assert "is not one of ['great', 'good', 'ok', 'low', 'awful']" in problems["data.mood"]


def test_fields_the_schema_does_not_declare_are_tolerated():
    event = goal_set(data={**goal_set()["data"], "reminder_time": "07:30"}, traceparent="00-a")
    assert parse_event(json.dumps(event).encode())["data"]["reminder_time"] == "07:30"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff{", "is not JSON: 'utf-8' codec can't decode"),
    (b'{"id": ', "is not JSON: Expecting value"),
    (b"[]", "must be a JSON object, not list"),
    (b'"evt"', "must be a JSON object, not str"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_hostile_or_broken_bytes_are_refused_with_a_reason(raw, reason):
    assert reason in refused(raw)["(event)"]


def test_an_oversized_event_is_refused_before_parsing():
    raw = json.dumps(goal_set(data={**goal_set()["data"], "pad": "x" * MAX_BYTES})).encode()
    assert refused(raw) == {"(event)": f"is {len(raw)} bytes; the limit is {MAX_BYTES}"}


def test_a_duplicated_key_is_refused_because_readers_would_disagree():
    raw = (b'{"specversion": "1.0", "id": "a", "source": "/g", "type": "coaching.goal.set", '
           b'"time": "2026-05-04T07:00:00Z", "data": {"goal_id": "g-1", "title": "Run", '
           b'"sessions_per_week": 3, "sessions_per_week": 99}}')
    assert refused(raw) == {"sessions_per_week": "appears twice; readers would disagree on its value"}


TEXT = st.text(min_size=1, max_size=30)
VALID_GOALS = st.builds(
    goal_set,
    id=TEXT, source=TEXT,
    time=st.datetimes(timezones=st.integers(-14 * 60, 14 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes)))).map(lambda t: t.isoformat()),
    data=st.fixed_dictionaries(
        {"goal_id": TEXT, "title": st.text(min_size=1, max_size=200),
         "sessions_per_week": st.integers(1, 14)},
        optional={"note": st.text(), "paused": st.booleans()}),
)
VALID_ENTRIES = st.builds(
    goal_set, type=st.just("coaching.entry.written"), subject=TEXT,
    data=st.fixed_dictionaries(
        {"entry_id": TEXT, "author_id": TEXT, "text": st.text(max_size=300)},
        optional={"mood": st.sampled_from(["great", "good", "ok", "low", "awful"]),
                  "tags": st.lists(st.text(), max_size=20)}),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(VALID_GOALS, VALID_ENTRIES))
def test_a_valid_event_is_never_rejected(event):
    assert parse_event(json.dumps(event).encode()) == event


def test_the_demo_accepts_one_and_refuses_three(capsys):
    main()
    out = capsys.readouterr().out
    assert out.startswith("accepted: coaching.goal.set 'Run 5 km'")
    assert out.count("refused: invalid event:") == 3
    assert "  data.goal_id: is required" in out
