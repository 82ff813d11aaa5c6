"""Commands, events and queries: three kinds of message with three contracts.

* A command asks for something to happen. It has exactly one handler, which
  may refuse it. Its name is an imperative: ``SetGoal``.
* An event states that something happened. Any number of subscribers, none
  of whom can undo it. Its name is in the past tense: ``GoalSet``.
* A query asks for data and changes nothing: ``GetGoals``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SetGoal:
    """Command: the user wants a new goal."""

    user_id: str
    title: str
    sessions_per_week: int


@dataclass(frozen=True)
class GoalSet:
    """Event: a goal was set. A fact; nobody can reject it any more."""

    user_id: str
    title: str
    sessions_per_week: int


@dataclass(frozen=True)
class GetGoals:
    """Query: which goals does this user have?"""

    user_id: str


class CommandRejected(Exception):
    """The one handler of a command said no, and said why."""


class Coaching:
    """Routes each kind of message by its own rules."""

    def __init__(self) -> None:
        self._goals: dict[str, list[str]] = defaultdict(list)
        self._listeners: list[Callable[[GoalSet], None]] = []

    def on_goal_set(self, listener: Callable[[GoalSet], None]) -> None:
        """Events fan out: register as many listeners as you like."""
        self._listeners.append(listener)

    def handle(self, command: SetGoal) -> GoalSet:
        """Commands have one handler, which validates, decides and records."""
        if not command.title.strip():
            raise CommandRejected("a goal needs a title")
        if not 1 <= command.sessions_per_week <= 14:
            raise CommandRejected(
                f"sessions_per_week must be 1..14, got {command.sessions_per_week}"
            )
        if command.title in self._goals[command.user_id]:
            raise CommandRejected(f"goal {command.title!r} already exists")
        self._goals[command.user_id].append(command.title)
        event = GoalSet(command.user_id, command.title, command.sessions_per_week)
        for listener in self._listeners:
            listener(event)
        return event

    def ask(self, query: GetGoals) -> tuple[str, ...]:
        """Queries read and return; they never change state."""
        return tuple(self._goals[query.user_id])


def main() -> None:
    """Send two commands (one refused), watch the event fan out, then query."""
    coaching = Coaching()
    coaching.on_goal_set(lambda e: print(f"  streak tracker starts counting {e.title!r}"))
    coaching.on_goal_set(lambda e: print(f"  coach plans {e.sessions_per_week} check-ins"))

    print("command SetGoal('run 5 km', 3)")
    coaching.handle(SetGoal("ana", "run 5 km", 3))
    print("command SetGoal('read', 30)")
    try:
        coaching.handle(SetGoal("ana", "read", 30))
    except CommandRejected as refusal:
        print(f"  rejected: {refusal} (no event, no listener ran)")
    print(f"query GetGoals('ana') -> {coaching.ask(GetGoals('ana'))}")


if __name__ == "__main__":
    main()
