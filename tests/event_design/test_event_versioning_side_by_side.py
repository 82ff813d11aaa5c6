"""A consumer reads v1 and v2 side by side; what it cannot read is parked with a reason and
kept for a retry, never dropped."""

from __future__ import annotations

from snippets.event_design.event_versioning_side_by_side import MoodTracker, main


def entry(version, mood, author="ana", **extra):
    return {"type": "coaching.entry.written", "version": version,
            "data": {"user_id": author, "mood": mood, **extra}}


def test_interleaved_v1_and_v2_events_are_both_read_in_order():
    tracker = MoodTracker()
    stream = [entry(1, "good"), entry(2, {"label": "low", "score": 2}), entry(1, "awful"),
              entry(2, {"label": "great", "score": 5}, author="ben")]
    assert all(tracker.handle(e) for e in stream)
    assert tracker.scores == {"ana": [4, 2, 1], "ben": [5]}
    assert tracker.parked == []


def test_an_unknown_version_is_parked_with_a_reason_and_changes_nothing():
    tracker = MoodTracker()
    tracker.handle(entry(1, "good"))
    early = entry(3, {"label": "ok", "score": 3}, author_id="ana")
    assert tracker.handle(early) is False
    assert tracker.scores == {"ana": [4]}
    assert [(p.event, p.reason) for p in tracker.parked] == [
        (early, "no handler for coaching.entry.written v3 (handles v1, v2)")]


def test_unknown_types_missing_versions_and_missing_data_are_parked_too():
    tracker = MoodTracker()
    odd = [{"type": "coaching.goal.set", "version": 1, "data": {}},
           {"type": "coaching.entry.written", "data": {"user_id": "ana", "mood": "ok"}},
           {"type": "coaching.entry.written", "version": 1}]
    assert [tracker.handle(e) for e in odd] == [False, False, False]
    assert [p.reason for p in tracker.parked] == [
        "no handler for coaching.goal.set v1 (handles no version of it)",
        "coaching.entry.written event carries no version",
        "coaching.entry.written v1 has no data object"]
    assert tracker.scores == {}


def test_parked_events_are_handled_once_a_handler_exists_and_kept_while_none_does():
    tracker = MoodTracker()
    tracker.handle(entry(3, {"label": "ok", "score": 3}))
    assert tracker.retry_parked() == 0
    assert len(tracker.parked) == 1
    tracker.handlers[("coaching.entry.written", 3)] = (
        lambda data: tracker.scores.setdefault(data["user_id"], []).append(data["mood"]["score"]))
    assert tracker.retry_parked() == 1
    assert tracker.parked == [] and tracker.scores == {"ana": [3]}


def test_the_demo_parks_the_early_v3_and_takes_it_after_the_upgrade(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out == ["scores: {'ana': [4, 2, 5]}",
                   "parked: no handler for coaching.entry.written v3 (handles v1, v2)",
                   "after the upgrade, retried 1: scores {'ana': [4, 2, 5, 3]}, parked 0"]
