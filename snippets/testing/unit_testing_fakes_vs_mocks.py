"""Fakes versus mocks: the same three tests written both ways, run against three systems.

The progress logger reacts to a ``RunLogged`` event by adding the distance to
the runner's goal through a :class:`GoalRepository`. A test can replace the
repository with a **fake**, a small working implementation (a dict), and
then check the state it ends in; or with **mocks** from ``unittest.mock``,
told what to return and afterwards asked how they were called.

``main()`` runs both suites against the logger, against a refactor that
behaves identically but calls the repository differently, and against a
broken logger that passes the user and goal ids in the wrong order. The
mocks fail the harmless refactor and pass the bug; the fake does the
opposite. ``pytest thisfile.py`` runs all six tests against the logger.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol
from unittest.mock import call, create_autospec


class GoalNotFound(LookupError):
    """No goal with that id for that user."""


@dataclass(frozen=True)
class Goal:
    user: str
    goal_id: str
    target_km: float
    total_km: float = 0.0


# --8<-- [start:port]
class GoalRepository(Protocol):
    """Where goals live: a database in production."""

    def get(self, user: str, goal_id: str) -> Goal: ...
    def save(self, goal: Goal) -> None: ...
    def add_progress(self, user: str, goal_id: str, km: float) -> Goal: ...


class InMemoryGoalRepository:
    """The fake: a working repository in a dict, with the real one's errors."""

    def __init__(self, *goals: Goal) -> None:
        self._goals = {(g.user, g.goal_id): g for g in goals}

    def get(self, user: str, goal_id: str) -> Goal:
        try:
            return self._goals[(user, goal_id)]
        except KeyError:
            raise GoalNotFound(f"no goal {goal_id!r} for user {user!r}") from None

    def save(self, goal: Goal) -> None:
        self._goals[(goal.user, goal.goal_id)] = goal

    def add_progress(self, user: str, goal_id: str, km: float) -> Goal:
        goal = self.get(user, goal_id)
        self.save(updated := replace(goal, total_km=goal.total_km + km))
        return updated
# --8<-- [end:port]


# --8<-- [start:systems]
class ProgressLogger:
    """Adds a logged run's distance to the runner's goal."""

    def __init__(self, goals: GoalRepository) -> None:
        self.goals = goals

    def on_run_logged(self, event: dict[str, Any]) -> Goal:
        goal = self.goals.get(event["user"], event["goal_id"])
        updated = replace(goal, total_km=goal.total_km + event["km"])
        self.goals.save(updated)
        return updated


class RefactoredProgressLogger(ProgressLogger):
    """Behaves the same: one atomic call instead of a read and a write."""

    def on_run_logged(self, event: dict[str, Any]) -> Goal:
        return self.goals.add_progress(event["user"], event["goal_id"], event["km"])


class ProgressLoggerWithSwappedIds(ProgressLogger):
    """Deliberately broken: passes the goal id where the user belongs, and back."""

    def on_run_logged(self, event: dict[str, Any]) -> Goal:
        goal = self.goals.get(event["goal_id"], event["user"])
        updated = replace(goal, total_km=goal.total_km + event["km"])
        self.goals.save(updated)
        return updated
# --8<-- [end:systems]


def run_logged(user: str, km: float) -> dict[str, Any]:
    return {"type": "RunLogged", "user": user, "goal_id": "run-10k", "km": km}


ANA, BEN = Goal("ana", "run-10k", 10.0), Goal("ben", "run-10k", 10.0)


# --8<-- [start:fake_tests]
def test_a_run_adds_to_the_goal_with_a_fake(logger=ProgressLogger):
    goals = InMemoryGoalRepository(ANA)
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    assert goals.get("ana", "run-10k").total_km == 3.0


def test_two_runs_accumulate_with_a_fake(logger=ProgressLogger):
    goals = InMemoryGoalRepository(ANA)
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    logger(goals).on_run_logged(run_logged("ana", 2.0))
    assert goals.get("ana", "run-10k").total_km == 5.0


def test_another_runners_goal_is_untouched_with_a_fake(logger=ProgressLogger):
    goals = InMemoryGoalRepository(ANA, BEN)
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    assert goals.get("ben", "run-10k").total_km == 0.0
# --8<-- [end:fake_tests]


# --8<-- [start:mock_tests]
def test_a_run_adds_to_the_goal_with_mocks(logger=ProgressLogger):
    goals = create_autospec(GoalRepository, instance=True)
    goals.get.return_value = ANA
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    goals.save.assert_called_once_with(replace(ANA, total_km=3.0))


def test_two_runs_accumulate_with_mocks(logger=ProgressLogger):
    goals = create_autospec(GoalRepository, instance=True)
    goals.get.side_effect = [ANA, replace(ANA, total_km=3.0)]
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    logger(goals).on_run_logged(run_logged("ana", 2.0))
    assert goals.save.call_args_list == [call(replace(ANA, total_km=3.0)),
                                         call(replace(ANA, total_km=5.0))]


def test_another_runners_goal_is_untouched_with_mocks(logger=ProgressLogger):
    goals = create_autospec(GoalRepository, instance=True)
    goals.get.return_value = ANA
    logger(goals).on_run_logged(run_logged("ana", 3.0))
    assert goals.save.call_args.args[0].user == "ana"
# --8<-- [end:mock_tests]


FAKE_TESTS = (test_a_run_adds_to_the_goal_with_a_fake, test_two_runs_accumulate_with_a_fake,
              test_another_runners_goal_is_untouched_with_a_fake)
MOCK_TESTS = (test_a_run_adds_to_the_goal_with_mocks, test_two_runs_accumulate_with_mocks,
              test_another_runners_goal_is_untouched_with_mocks)


def run_suite(tests: tuple[Any, ...], logger: type[ProgressLogger]) -> list[str]:
    """Run ``tests`` against ``logger``; return one line per failing test."""
    failures = []
    for test in tests:
        try:
            test(logger)
        except Exception as failure:  # noqa: BLE001 - an assertion, or the system crashing
            reason = str(failure).splitlines()[0] if str(failure) else ""
            failures.append(f"{test.__name__}: {type(failure).__name__}: {reason}")
    return failures


def main() -> None:
    print(f"{'system':<30} {'with a fake':<14} with mocks")
    details = []
    for logger in (ProgressLogger, RefactoredProgressLogger, ProgressLoggerWithSwappedIds):
        cells = []
        for tests in (FAKE_TESTS, MOCK_TESTS):
            failures = run_suite(tests, logger)
            cells.append(f"{len(failures)} of {len(tests)} fail" if failures
                         else f"{len(tests)} pass")
            details += [f"  {logger.__name__}, {f}" for f in failures[:1]]
        print(f"{logger.__name__:<30} {cells[0]:<14} {cells[1]}")
    print("first failure of each failing suite:")
    print("\n".join(details))


if __name__ == "__main__":
    main()
