"""No versioning: a renamed field is silently misread; versions and upcasters read every shape."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_no_versioning import (
    UnversionedProgress,
    VersionedProgress,
    VersionError,
    main,
    upcast,
)


def test_the_demo_misreads_the_new_shape_only_without_versions(capsys):
    main()
    assert capsys.readouterr().out == (
        "unversioned: targets {'g-1': 10000, 'g-2': 0}, achieved before any run: ['g-2']\n"
        "versioned  : targets {'g-1': 10000, 'g-2': 5000}\n"
        "parked     : [\"goal.set version 3 of goal 'g-3': this consumer reads versions 1 and 2\"]\n")


def v1(goal_id: str, km: int) -> dict:
    return {"type": "goal.set", "version": 1, "goal_id": goal_id, "distance_km": km}


def v2(goal_id: str, km: int, **extra) -> dict:
    return {"type": "goal.set", "version": 2, "goal_id": goal_id, "distance_m": km * 1000, **extra}


goals = st.lists(st.tuples(st.integers(1, 42), st.booleans(), st.booleans()), max_size=20)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 42))
def test_broken_a_goal_in_the_new_shape_gets_a_zero_target_without_any_error(km):
    progress = UnversionedProgress()
    progress.handle({"type": "goal.set", "goal_id": "g", "distance_m": km * 1000})
    assert progress.targets_m == {"g": 0}


@settings(max_examples=100, deadline=None)
@given(goals)
def test_fixed_any_mix_of_old_and_new_events_gives_the_same_targets(mix):
    progress = VersionedProgress()
    expected = {}
    for n, (km, old, noted) in enumerate(mix):
        goal_id = f"g-{n}"
        extra = {"coach_note": "start slow"} if noted else {}
        progress.handle(v1(goal_id, km) if old else v2(goal_id, km, **extra))
        expected[goal_id] = km * 1000
    assert progress.targets_m == expected


def test_upcasting_never_changes_the_stored_event():
    stored = v1("g-1", 10)
    before = copy.deepcopy(stored)
    assert upcast(stored) == {"type": "goal.set", "version": 2, "goal_id": "g-1",
                              "distance_m": 10000}
    assert stored == before


@pytest.mark.parametrize(("event", "message"), [
    ({"type": "goal.set", "version": 3, "goal_id": "g-9", "distance": "5 mi"},
     "goal.set version 3 of goal 'g-9': this consumer reads versions 1 and 2"),
    ({"type": "goal.set", "goal_id": "g-9", "distance_m": 5000},
     "goal.set version None of goal 'g-9'"),
    ({"type": "goal.set", "version": "2", "goal_id": "g-9", "distance_m": 5000},
     "goal.set version '2' of goal 'g-9'"),
])
def test_fixed_an_unreadable_version_is_refused_by_name_and_nothing_stored_is_lost(event, message):
    progress = VersionedProgress()
    progress.handle(v1("g-1", 10))
    with pytest.raises(VersionError, match=message):
        progress.handle(event)
    assert progress.targets_m == {"g-1": 10000}
