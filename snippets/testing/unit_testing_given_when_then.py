"""Given-when-then tests for an event-sourced aggregate: a coaching goal.

The goal is a *decider*: ``decide(command, state)`` returns the events a
command causes, or raises :class:`GoalError`, and ``evolve(state, event)``
folds one event into the state. A test then reads as a specification:
*given* these past events, *when* this command arrives, *then* exactly these
new events, or this error. :class:`Scenario` is the helper that says so.

The ``test_*`` functions are ordinary pytest tests: ``pytest thisfile.py``
runs them against :class:`Goal`, the default of their argument (pytest does
not treat an argument with a default as a fixture). ``main()`` runs them
twice, against the goal and against :class:`GoalWithOffByOne`, a
deliberately broken copy, and reports what caught it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pytest


class GoalError(Exception):
    """A command the goal refuses, with the reason."""


# --8<-- [start:domain]
@dataclass(frozen=True)
class SetGoal:
    goal_id: str
    title: str
    target: int


@dataclass(frozen=True)
class LogProgress:
    goal_id: str
    entry_id: str
    amount: int


@dataclass(frozen=True)
class GoalSet:
    goal_id: str
    title: str
    target: int


@dataclass(frozen=True)
class ProgressLogged:
    goal_id: str
    entry_id: str
    amount: int
    total: int


@dataclass(frozen=True)
class GoalReached:
    goal_id: str


@dataclass(frozen=True)
class GoalState:
    target: int = 0
    total: int = 0
    reached: bool = False
    entries: frozenset[str] = field(default_factory=frozenset)


class Goal:
    """The aggregate: who may do what to a goal, as events."""

    @staticmethod
    def is_reached(total: int, target: int) -> bool:
        return total >= target

    @classmethod
    def decide(cls, command: object, state: GoalState | None) -> list[object]:
        if isinstance(command, SetGoal):
            if state is not None:
                raise GoalError(f"goal {command.goal_id!r} already exists")
            if type(command.target) is not int or command.target < 1:
                raise GoalError(f"target must be a whole number >= 1, got {command.target!r}")
            return [GoalSet(command.goal_id, command.title, command.target)]
        if isinstance(command, LogProgress):
            if state is None:
                raise GoalError(f"no goal {command.goal_id!r}")
            if command.entry_id in state.entries:
                return []  # the same entry again (a redelivery): nothing new happened
            if state.reached:
                raise GoalError(f"goal {command.goal_id!r} is already reached")
            if type(command.amount) is not int or command.amount < 1:
                raise GoalError(f"amount must be a whole number >= 1, got {command.amount!r}")
            total = state.total + command.amount
            events: list[object] = [ProgressLogged(command.goal_id, command.entry_id,
                                                   command.amount, total)]
            if cls.is_reached(total, state.target):
                events.append(GoalReached(command.goal_id))
            return events
        raise GoalError(f"unknown command {type(command).__name__}")

    @staticmethod
    def evolve(state: GoalState | None, event: object) -> GoalState:
        if isinstance(event, GoalSet):
            return GoalState(target=event.target)
        assert state is not None, f"{type(event).__name__} before GoalSet"
        if isinstance(event, ProgressLogged):
            return replace(state, total=event.total, entries=state.entries | {event.entry_id})
        if isinstance(event, GoalReached):
            return replace(state, reached=True)
        raise TypeError(f"unknown event {type(event).__name__}")


class GoalWithOffByOne(Goal):
    """Deliberately broken: a goal counts as reached only once progress passes the target."""

    @staticmethod
    def is_reached(total: int, target: int) -> bool:
        return total > target
# --8<-- [end:domain]


# --8<-- [start:scenario]
class Scenario:
    """Given past events, when a command, then these events or this error."""

    def __init__(self, aggregate: type[Goal]) -> None:
        self.aggregate = aggregate
        self.history: list[object] = []
        self.command: object = None

    def given(self, *events: object) -> Scenario:
        self.history = list(events)
        return self

    def when(self, command: object) -> Scenario:
        self.command = command
        return self

    def _state(self) -> GoalState | None:
        state = None
        for event in self.history:
            state = self.aggregate.evolve(state, event)
        return state

    def then(self, *expected: object) -> None:
        """Assert that the command produces exactly ``expected``, in order."""
        try:
            produced = self.aggregate.decide(self.command, self._state())
        except GoalError as error:
            raise AssertionError(f"then: expected {list(expected)}, "
                                 f"but the command was refused: {error}") from error
        assert produced == list(expected), f"then: expected {list(expected)}, got {produced}"

    def then_error(self, message: str) -> None:
        """Assert that the command is refused with a message matching ``message``."""
        with pytest.raises(GoalError, match=message):
            produced = self.aggregate.decide(self.command, self._state())
            raise AssertionError(f"then: expected an error {message!r}, got {produced}")
# --8<-- [end:scenario]


RUN_5K = GoalSet("run-5k", "Run 5 km three times", 3)


# --8<-- [start:tests]
def test_setting_a_goal_records_it(goal=Goal):
    Scenario(goal).given().when(SetGoal("run-5k", "Run 5 km three times", 3)).then(RUN_5K)


def test_a_goal_cannot_be_set_twice(goal=Goal):
    Scenario(goal).given(RUN_5K).when(SetGoal("run-5k", "again", 5)).then_error("already exists")


def test_a_target_must_be_a_positive_whole_number(goal=Goal):
    Scenario(goal).given().when(SetGoal("run-5k", "none", 0)).then_error("whole number >= 1")


def test_progress_below_the_target_is_logged_with_the_running_total(goal=Goal):
    (Scenario(goal).given(RUN_5K, ProgressLogged("run-5k", "e1", 1, 1))
     .when(LogProgress("run-5k", "e2", 1))
     .then(ProgressLogged("run-5k", "e2", 1, 2)))


def test_reaching_the_target_exactly_completes_the_goal(goal=Goal):
    (Scenario(goal).given(RUN_5K, ProgressLogged("run-5k", "e1", 2, 2))
     .when(LogProgress("run-5k", "e2", 1))
     .then(ProgressLogged("run-5k", "e2", 1, 3), GoalReached("run-5k")))


def test_the_same_entry_logged_twice_changes_nothing(goal=Goal):
    (Scenario(goal).given(RUN_5K, ProgressLogged("run-5k", "e1", 1, 1))
     .when(LogProgress("run-5k", "e1", 1))
     .then())


def test_progress_on_a_reached_goal_is_refused(goal=Goal):
    (Scenario(goal).given(RUN_5K, ProgressLogged("run-5k", "e1", 3, 3), GoalReached("run-5k"))
     .when(LogProgress("run-5k", "e2", 1))
     .then_error("already reached"))
# --8<-- [end:tests]


TESTS = (test_setting_a_goal_records_it, test_a_goal_cannot_be_set_twice,
         test_a_target_must_be_a_positive_whole_number,
         test_progress_below_the_target_is_logged_with_the_running_total,
         test_reaching_the_target_exactly_completes_the_goal,
         test_the_same_entry_logged_twice_changes_nothing,
         test_progress_on_a_reached_goal_is_refused)


def run_tests(aggregate: type[Goal]) -> list[tuple[str, str | None]]:
    """Run every test against ``aggregate``: (name, None) or (name, why it failed)."""
    results: list[tuple[str, str | None]] = []
    for test in TESTS:
        try:
            test(aggregate)
        except AssertionError as failure:
            results.append((test.__name__, re.sub(r"\s+", " ", str(failure))))
        else:
            results.append((test.__name__, None))
    return results


def main() -> None:
    for aggregate in (Goal, GoalWithOffByOne):
        results = run_tests(aggregate)
        failed = [(name, why) for name, why in results if why]
        print(f"{aggregate.__name__}: {len(results) - len(failed)} passed, {len(failed)} failed")
        for name, why in failed:
            print(f"  caught by {name}:\n    {why}")


if __name__ == "__main__":
    main()
