"""Notification consumers depend on the source being up; state transfer and delta consumers do
not, and a delta consumer refuses to guess across a gap."""

from __future__ import annotations

import pytest

from snippets.event_design.event_payloads_thin_vs_fat import (
    DeltaConsumer,
    GoalService,
    NotificationConsumer,
    SourceDown,
    StateConsumer,
    main,
)

FIRST = {"user_id": "ana", "title": "Run 5 km", "sessions_per_week": 3, "status": "active"}


def publish(source: GoalService, *changes: dict) -> list[dict]:
    return [source.change("g-1", **change) for change in changes]


def test_the_three_styles_carry_an_id_the_whole_state_or_only_the_change():
    events = publish(GoalService(), FIRST, {"sessions_per_week": 4})[-1]
    assert events["notification"] == {"goal_id": "g-1"}
    assert events["state"]["goal"] == {**FIRST, "goal_id": "g-1", "sessions_per_week": 4,
                                       "version": 2}
    assert events["delta"] == {"goal_id": "g-1", "version": 2,
                               "changes": {"sessions_per_week": 4}}


def test_a_notification_consumer_calls_back_once_per_event():
    source = GoalService()
    consumer = NotificationConsumer(source)
    for events in publish(source, FIRST, {"sessions_per_week": 4}):
        consumer.handle(events["notification"])
    assert source.calls == 2 and consumer.goals["g-1"]["version"] == 2


def test_while_the_source_is_down_notifications_wait_and_none_is_lost():
    source = GoalService()
    consumer = NotificationConsumer(source)
    [first] = publish(source, FIRST)
    consumer.handle(first["notification"])
    source.up = False
    for events in publish(source, {"sessions_per_week": 4}, {"status": "achieved"}):
        consumer.handle(events["notification"])
    assert consumer.goals["g-1"]["version"] == 1
    assert len(consumer.waiting) == 2
    consumer.retry()  # still down: still waiting
    assert len(consumer.waiting) == 2
    source.up = True
    consumer.retry()
    assert consumer.waiting == [] and consumer.goals["g-1"] == source.goals["g-1"]
    with pytest.raises(SourceDown):
        source.up = False
        source.get("g-1")


def test_state_and_delta_consumers_stay_current_while_the_source_is_down():
    source = GoalService()
    stated, patched = StateConsumer(), DeltaConsumer()
    source.up = False
    for events in publish(source, FIRST, {"sessions_per_week": 4}, {"status": "achieved"}):
        stated.handle(events["state"])
        patched.handle(events["delta"])
    assert stated.goals["g-1"] == patched.goals["g-1"] == source.goals["g-1"]
    assert source.calls == 0


def test_a_state_consumer_ignores_duplicates_and_older_copies_arriving_late():
    events = publish(GoalService(), FIRST, {"sessions_per_week": 4}, {"status": "achieved"})
    consumer = StateConsumer()
    for index in (0, 2, 1, 2, 0):
        consumer.handle(events[index]["state"])
    assert consumer.goals["g-1"]["version"] == 3 and consumer.goals["g-1"]["status"] == "achieved"


def test_a_delta_consumer_skips_duplicates_and_refuses_a_gap_without_changing_its_copy():
    events = publish(GoalService(), FIRST, {"sessions_per_week": 4}, {"status": "achieved"})
    consumer = DeltaConsumer()
    consumer.handle(events[0]["delta"])
    consumer.handle(events[0]["delta"])
    before = dict(consumer.goals["g-1"])
    with pytest.raises(ValueError, match="g-1: have version 1, got 3; the deltas in between"):
        consumer.handle(events[2]["delta"])
    assert consumer.goals["g-1"] == before
    consumer.handle(events[1]["delta"])
    consumer.handle(events[2]["delta"])
    assert consumer.goals["g-1"]["version"] == 3


def test_the_demo_shows_sizes_calls_and_the_gap(capsys):
    main()
    out = capsys.readouterr().out
    assert "notification bytes per event [18, 18, 18]: has version 1, status active" in out
    assert "3 calls to the goal service, 2 events waiting" in out
    assert "notification consumer at version 3 after 5 calls" in out
    assert "delta without its predecessor: g-2: have version 0, got 2" in out


@pytest.mark.parametrize(("consumer", "event", "missing"), [
    (StateConsumer(), {"goal": {"goal_id": "g-1"}}, "version"),
    (StateConsumer(), {"state": {}}, "goal"),
    (DeltaConsumer(), {"goal_id": "g-1", "version": 1}, "changes"),
    (DeltaConsumer(), {"version": 1, "changes": {}}, "goal_id"),
    (NotificationConsumer(GoalService()), {"id": "g-1"}, "goal_id"),
])
def test_a_malformed_event_fails_naming_the_missing_field_and_changes_nothing(
        consumer, event, missing):
    with pytest.raises(KeyError, match=missing):
        consumer.handle(event)
    assert consumer.goals == {}
