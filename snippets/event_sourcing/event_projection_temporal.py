"""Temporal queries: the state of every goal as of a global position or a point in time.

Because the store keeps every event, any past state can be rebuilt by
folding a prefix of the global order: up to a position, or up to the last
event recorded by a given time. A coaching reflection that stores the
position it was written from can be explained later exactly as the coach saw
it, even after the goals have moved on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """The fields a temporal query reads (the Event Store page's RecordedEvent has them)."""

    position: int
    stream: str
    type: str
    data: dict[str, Any]
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class GoalState:
    title: str
    target: int
    sessions: int = 0
    achieved: bool = False


# --8<-- [start:as_of]
def as_of(events: Iterable[Any], *, position: int | None = None,
          at: datetime | None = None) -> list[Any]:
    """The events (in global order) that existed at ``position`` or at time ``at``.

    By time, this is the longest prefix recorded at or before ``at``: it
    stops at the first later event, so a writer whose clock ran behind
    cannot make the past contain an event without the ones before it.

    Raises:
        ValueError: both or neither of position and at, or a naive datetime.
    """
    if (position is None) == (at is None):
        raise ValueError("give exactly one of position= or at=")
    if at is not None and at.tzinfo is None:
        raise ValueError(f"at={at.isoformat()} has no time zone; use an aware datetime")
    prefix = []
    for event in events:
        if (position is not None and event.position > position) or \
                (at is not None and event.recorded_at > at):
            break
        prefix.append(event)
    return prefix


def goal_board(events: Iterable[Any]) -> dict[str, GoalState]:
    """Fold events into every goal's state."""
    board: dict[str, GoalState] = {}
    for event in events:
        if event.type == "GoalSet":
            board[event.stream] = GoalState(event.data["title"], event.data["target"])
        elif event.type == "SessionLogged" and event.stream in board:
            goal = board[event.stream]
            board[event.stream] = replace(goal, sessions=goal.sessions + 1)
        elif event.type == "GoalAchieved" and event.stream in board:
            board[event.stream] = replace(board[event.stream], achieved=True)
    return board
# --8<-- [end:as_of]


def show(board: dict[str, GoalState]) -> str:
    return ", ".join(f"{stream} {g.sessions}/{g.target}{' done' if g.achieved else ''}"
                     for stream, g in sorted(board.items()))


# --8<-- [start:demo]
def main() -> None:
    """A week of Ana's goals, asked about at three moments."""
    monday = datetime(2025, 3, 3, 20, 0, tzinfo=UTC)
    plan = [  # (days after Monday 20:00, stream, type, data)
        (0, "goal-run", "GoalSet", {"title": "Run 5 km", "target": 3}),
        (0, "goal-read", "GoalSet", {"title": "Read 20 pages", "target": 5}),
        (1, "goal-run", "SessionLogged", {}),
        (1, "goal-read", "SessionLogged", {}),
        (2, "reflection-ana", "ReflectionWritten", {"based_on": 4, "text": "Good start."}),
        (2, "goal-run", "SessionLogged", {}),
        (3, "goal-run", "SessionLogged", {}),
        (3, "goal-run", "GoalAchieved", {}),
        (4, "goal-read", "SessionLogged", {}),
    ]
    events = [RecordedEvent(i, stream, type_, data, monday + timedelta(days=day, minutes=i))
              for i, (day, stream, type_, data) in enumerate(plan, 1)]

    print(f"now                    : {show(goal_board(events))}")
    thursday_noon = datetime(2025, 3, 6, 12, 0, tzinfo=UTC)
    print(f"Thursday 12:00 UTC     : {show(goal_board(as_of(events, at=thursday_noon)))}")
    reflection = next(e for e in events if e.type == "ReflectionWritten")
    seen = goal_board(as_of(events, position=reflection.data["based_on"]))
    print(f"what the coach saw     : {show(seen)} -> {reflection.data['text']!r}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
