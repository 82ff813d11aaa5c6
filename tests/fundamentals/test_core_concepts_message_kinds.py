"""Commands can be refused by their one handler; events fan out; queries change nothing."""

from __future__ import annotations

import dataclasses

import pytest

from snippets.fundamentals.core_concepts_message_kinds import (
    Coaching,
    CommandRejected,
    GetGoals,
    GoalSet,
    SetGoal,
    main,
)


def test_a_command_that_succeeds_records_state_and_notifies_every_listener():
    coaching = Coaching()
    heard: list[tuple[str, GoalSet]] = []
    coaching.on_goal_set(lambda e: heard.append(("streaks", e)))
    coaching.on_goal_set(lambda e: heard.append(("coach", e)))

    event = coaching.handle(SetGoal("ana", "run 5 km", 3))

    assert event == GoalSet("ana", "run 5 km", 3)
    assert heard == [("streaks", event), ("coach", event)]
    assert coaching.ask(GetGoals("ana")) == ("run 5 km",)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (SetGoal("ana", "   ", 3), "a goal needs a title"),
        (SetGoal("ana", "read", 0), "sessions_per_week must be 1..14, got 0"),
        (SetGoal("ana", "read", 15), "sessions_per_week must be 1..14, got 15"),
    ],
)
def test_a_refused_command_says_why_and_emits_nothing(command, reason):
    coaching = Coaching()
    heard: list[GoalSet] = []
    coaching.on_goal_set(heard.append)
    with pytest.raises(CommandRejected, match=reason):
        coaching.handle(command)
    assert heard == []
    assert coaching.ask(GetGoals("ana")) == ()


def test_a_duplicate_goal_is_refused_and_the_first_is_kept():
    coaching = Coaching()
    coaching.handle(SetGoal("ana", "run 5 km", 3))
    with pytest.raises(CommandRejected, match="goal 'run 5 km' already exists"):
        coaching.handle(SetGoal("ana", "run 5 km", 4))
    assert coaching.ask(GetGoals("ana")) == ("run 5 km",)


def test_queries_do_not_change_state_and_events_are_immutable():
    coaching = Coaching()
    event = coaching.handle(SetGoal("ana", "run 5 km", 3))
    assert coaching.ask(GetGoals("ana")) == coaching.ask(GetGoals("ana"))
    assert coaching.ask(GetGoals("ben")) == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.title = "walk"  # type: ignore[misc]


def test_the_demo_shows_fan_out_a_refusal_and_a_query(capsys):
    main()
    out = capsys.readouterr().out
    assert "  streak tracker starts counting 'run 5 km'" in out
    assert "  coach plans 3 check-ins" in out
    assert "  rejected: sessions_per_week must be 1..14, got 30" in out
    assert out.rstrip().endswith("query GetGoals('ana') -> ('run 5 km',)")
