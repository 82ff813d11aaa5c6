"""The given-when-then page: its tests pass on the goal, catch the off-by-one, and the helper explains."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.testing.unit_testing_given_when_then import (
    TESTS,
    Goal,
    GoalError,
    GoalReached,
    GoalSet,
    GoalWithOffByOne,
    LogProgress,
    ProgressLogged,
    Scenario,
    SetGoal,
    main,
    run_tests,
)

RUN_5K = GoalSet("run-5k", "Run 5 km three times", 3)


@pytest.mark.parametrize("page_test", TESTS, ids=lambda t: t.__name__)
def test_every_test_on_the_page_passes_against_the_goal(page_test):
    page_test(Goal)


def test_the_off_by_one_goal_is_caught_by_exactly_the_boundary_test():
    failed = {name: why for name, why in run_tests(GoalWithOffByOne) if why}
    assert list(failed) == ["test_reaching_the_target_exactly_completes_the_goal"]
    assert "GoalReached(goal_id='run-5k')], got [ProgressLogged(" in failed[
        "test_reaching_the_target_exactly_completes_the_goal"]


def test_then_says_when_an_expected_success_was_refused():
    with pytest.raises(AssertionError, match="but the command was refused: no goal 'run-5k'"):
        Scenario(Goal).given().when(LogProgress("run-5k", "e1", 1)).then(
            ProgressLogged("run-5k", "e1", 1, 1))


def test_then_shows_expected_and_produced_events_when_they_differ():
    with pytest.raises(AssertionError, match=r"expected \[\], got \[ProgressLogged"):
        Scenario(Goal).given(RUN_5K).when(LogProgress("run-5k", "e1", 1)).then()


def test_then_error_fails_when_the_command_is_accepted():
    with pytest.raises(AssertionError, match="expected an error 'already exists', got"):
        Scenario(Goal).given().when(SetGoal("g", "t", 1)).then_error("already exists")


def test_then_error_fails_when_the_refusal_has_another_reason():
    with pytest.raises(AssertionError, match="Regex pattern did not match"):
        Scenario(Goal).given(RUN_5K).when(SetGoal("run-5k", "t", 1)).then_error("target")


@pytest.mark.parametrize(("command", "reason"), [
    (LogProgress("run-5k", "e1", 0), "amount must be a whole number >= 1, got 0"),
    (LogProgress("run-5k", "e1", 1.5), "amount must be a whole number >= 1, got 1.5"),
    (SetGoal("other", "t", True), "target must be a whole number >= 1, got True"),
    ("run 5 km", "unknown command str"),
])
def test_bad_commands_are_refused_with_the_problem_named(command, reason):
    state = Goal.evolve(None, RUN_5K) if not isinstance(command, SetGoal) else None
    with pytest.raises(GoalError, match=reason):
        Goal.decide(command, state)


def test_evolve_refuses_events_it_does_not_know_or_that_come_before_the_goal():
    with pytest.raises(AssertionError, match="ProgressLogged before GoalSet"):
        Goal.evolve(None, ProgressLogged("g", "e", 1, 1))
    with pytest.raises(TypeError, match="unknown event str"):
        Goal.evolve(Goal.evolve(None, RUN_5K), "GoalDeleted")


entries = st.lists(st.tuples(st.sampled_from(["e1", "e2", "e3", "e4", "e5"]),
                             st.integers(1, 4)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), entries)
def test_replaying_any_entries_counts_each_once_and_reaches_the_goal_once(target, logged):
    state = Goal.evolve(None, GoalSet("g", "t", target))
    counted: dict[str, int] = {}
    reached = 0
    for entry_id, amount in logged:
        try:
            events = Goal.decide(LogProgress("g", entry_id, amount), state)
        except GoalError as error:
            assert "already reached" in str(error) and state.reached
            continue
        for event in events:
            state = Goal.evolve(state, event)
            if isinstance(event, ProgressLogged):
                counted[event.entry_id] = event.amount
            reached += isinstance(event, GoalReached)
    assert state.total == sum(counted.values())
    assert reached == (1 if state.total >= target else 0)


def test_the_demo_reports_the_passing_goal_and_the_caught_off_by_one(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["Goal: 7 passed, 0 failed", "GoalWithOffByOne: 6 passed, 1 failed",
                         "  caught by test_reaching_the_target_exactly_completes_the_goal:"]


class GoalThatCountsRedeliveries(Goal):
    """A mutant: the redelivery check is gone, so the same entry is counted again."""

    @classmethod
    def decide(cls, command: object, state):
        if isinstance(command, LogProgress) and state is not None:
            state = type(state)(target=state.target, total=state.total,
                                reached=state.reached, entries=frozenset())
        return super().decide(command, state)


def test_a_goal_that_counts_a_redelivery_is_caught_by_exactly_the_redelivery_test():
    failed = {name: why for name, why in run_tests(GoalThatCountsRedeliveries) if why}
    assert list(failed) == ["test_the_same_entry_logged_twice_changes_nothing"]
    assert "ProgressLogged(goal_id='run-5k', entry_id='e1', amount=1, total=2)" in failed[
        "test_the_same_entry_logged_twice_changes_nothing"]
