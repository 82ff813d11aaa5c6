"""The tolerant reader survives what breaks the strict one, and is still strict about what it
needs: missing required fields and wrong types are named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.event_design.event_versioning_tolerant_reader import (
    Goal,
    main,
    read_strict,
    read_tolerant,
)

GOAL = {"goal_id": "g-7", "title": "Meditate", "sessions_per_week": 5}


def test_a_new_field_breaks_the_strict_reader_and_not_the_tolerant_one():
    newer = {**GOAL, "reminder_time": "07:30"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'reminder_time'"):
        read_strict(newer)
    assert read_tolerant(newer) == Goal("g-7", "Meditate", 5)


def test_missing_optional_fields_get_their_defaults_and_present_ones_are_kept():
    assert read_tolerant(GOAL) == Goal("g-7", "Meditate", 5, note="", paused=False)
    assert read_tolerant({**GOAL, "note": "mornings", "paused": True}) == Goal(
        "g-7", "Meditate", 5, note="mornings", paused=True)


def test_every_missing_required_field_and_wrong_type_is_named():
    with pytest.raises(ValueError) as refused:
        read_tolerant({"goal_id": 7, "sessions_per_week": True, "paused": "no"})
    assert str(refused.value) == (
        "cannot read goal: goal_id: expected str, got 7; title: required, missing; "
        "sessions_per_week: expected int, got True; paused: expected bool, got 'no'")


@pytest.mark.parametrize("data", [None, [], "goal", 5])
def test_data_that_is_not_an_object_is_refused(data):
    with pytest.raises(ValueError, match="goal data must be an object"):
        read_tolerant(data)


@given(st.dictionaries(st.text().filter(lambda k: k not in Goal.__dataclass_fields__),
                       st.none() | st.integers() | st.text(), max_size=5))
def test_unknown_fields_never_change_what_the_tolerant_reader_reads(extra):
    assert read_tolerant({**extra, **GOAL}) == read_tolerant(GOAL)


def test_the_demo_shows_the_strict_reader_break_and_the_tolerant_one_read(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("read_strict  : TypeError")
    assert out[1] == ("read_tolerant: Goal(goal_id='g-7', title='Meditate', sessions_per_week=5, "
                      "note='', paused=False)")
    assert "title: required, missing" in out[2]
