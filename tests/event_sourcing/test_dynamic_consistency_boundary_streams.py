"""Per-stream optimistic concurrency: a rule over two entities breaks with a stream per course,
and unrelated decisions collide with one stream for everything."""

from __future__ import annotations

import pytest

from snippets.event_sourcing.dynamic_consistency_boundary_streams import (
    MAX_COURSES,
    StreamStore,
    VersionConflictError,
    decide,
    main,
)


@pytest.fixture
def streams(tmp_path) -> StreamStore:
    store = StreamStore(tmp_path / "streams.db")
    for course in ("journaling", "sleep", "running"):
        store.append(f"course-{course}", "CourseDefined", {"course": course, "places": 5},
                     expected=0)
    data, version = decide(store, "course-journaling", "ana", "journaling")
    store.append("course-journaling", "MemberEnrolled", data, expected=version)
    return store


def test_two_streams_each_checked_on_its_own_let_a_member_past_the_limit(streams):
    decisions = [(f"course-{c}", *decide(streams, f"course-{c}", "ana", c))
                 for c in ("sleep", "running")]  # both read "ana takes 1 course"
    for stream, data, version in decisions:
        streams.append(stream, "MemberEnrolled", data, expected=version)  # neither is refused
    assert len(streams.enrolments_of("ana")) == MAX_COURSES + 1


def test_the_same_decisions_one_after_the_other_keep_the_limit(streams):
    data, version = decide(streams, "course-sleep", "ana", "sleep")
    streams.append("course-sleep", "MemberEnrolled", data, expected=version)
    with pytest.raises(ValueError, match=f"ana already takes {MAX_COURSES} courses"):
        decide(streams, "course-running", "ana", "running")


def test_one_stream_for_everything_refuses_a_decision_that_touched_nothing_in_common(tmp_path):
    store = StreamStore(tmp_path / "one.db")
    for version, course in enumerate(("sleep", "running")):
        store.append("all", "CourseDefined", {"course": course, "places": 5}, expected=version)
    dan, eve = decide(store, "all", "dan", "sleep"), decide(store, "all", "eve", "running")
    store.append("all", "MemberEnrolled", dan[0], expected=dan[1])
    with pytest.raises(VersionConflictError, match="expected version 2, but it is at 3"):
        store.append("all", "MemberEnrolled", eve[0], expected=eve[1])
    assert store.read("all")[1] == 3


def test_a_full_course_is_refused_within_its_stream(tmp_path):
    store = StreamStore(tmp_path / "full.db")
    store.append("c", "CourseDefined", {"course": "c", "places": 1}, expected=0)
    data, version = decide(store, "c", "ana", "c")
    store.append("c", "MemberEnrolled", data, expected=version)
    with pytest.raises(ValueError, match="c is full"):
        decide(store, "c", "ben", "c")


def test_main_shows_the_broken_limit_and_the_false_conflict(capsys):
    main()
    out = capsys.readouterr().out
    assert "ana now takes 3 courses; the limit is 2" in out
    assert "eve: stream 'all-courses': expected version 3, but it is at 4" in out
