"""Mistake: ignoring ordering. Two workers apply one user's changes in the wrong order.

Ana sets her goal to 10 km, then changes it to 5 km. With *competing
consumers* the next event goes to whichever worker is free, so the slow
handling of the first change can finish after the second one: she ends up
with 10 km, and no error anywhere.

The fix has two parts. **Partition by key**: a stable hash of the user id
picks the worker, and each worker handles its events one at a time, so one
user's events are applied in the order they were published while different
users still run in parallel. **Sequence numbers**: the producer numbers each
user's events; the consumer ignores a number it has already applied (a
redelivery) and holds back one that arrives early until the gap is filled.

The workers are simulated with a clock (each event states how long it takes
to handle), so every run is identical.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class GoalChanged:
    """User ``user`` set a goal of ``km``; ``seq`` numbers that user's events from 1."""

    user: str
    seq: int
    km: int
    cost: int = 1  # simulated time to handle it

    def __post_init__(self) -> None:
        if self.seq < 1 or self.cost < 1:
            raise ValueError(f"{self.user} #{self.seq}: seq and cost must be >= 1")


def run_workers(events: list[GoalChanged], workers: int, *, by_key: bool) -> list[GoalChanged]:
    """Hand queued events to ``workers`` workers; return them in the order handling ends."""
    if workers < 1:
        raise ValueError(f"need at least one worker, not {workers}")
    free_at = [0] * workers
    finished: list[tuple[int, int, GoalChanged]] = []
    for event in events:
        # --8<-- [start:assign]
        if by_key:   # fixed: the same user always goes to the same worker
            worker = zlib.crc32(event.user.encode()) % workers
        else:        # broken: competing consumers, whoever is free first
            worker = min(range(workers), key=lambda w: (free_at[w], w))
        # --8<-- [end:assign]
        free_at[worker] += event.cost
        finished.append((free_at[worker], worker, event))
    return [event for _, _, event in sorted(finished, key=lambda f: (f[0], f[1]))]


def last_arrival_wins(events: list[GoalChanged]) -> dict[str, int]:
    """Broken: whatever is handled last is the goal."""
    return {event.user: event.km for event in events}


# --8<-- [start:sequenced]
class SequencedGoals:
    """Fixed: apply each user's events in ``seq`` order, exactly once."""

    def __init__(self) -> None:
        self.goals: dict[str, int] = {}
        self.applied: dict[str, int] = {}            # user -> last seq applied
        self.early: dict[tuple[str, int], GoalChanged] = {}

    def handle(self, event: GoalChanged) -> str:
        last = self.applied.get(event.user, 0)
        if event.seq <= last:
            return "stale"                            # a redelivery: already applied
        self.early[(event.user, event.seq)] = event
        while (event.user, last + 1) in self.early:  # apply everything now contiguous
            ready = self.early.pop((event.user, last + 1))
            self.goals[event.user], last = ready.km, ready.seq
        self.applied[event.user] = last
        return "applied" if last >= event.seq else "held"
# --8<-- [end:sequenced]


def main() -> None:
    """Ana changes her goal twice; the first change is slow to handle."""
    events = [GoalChanged("ana", 1, 10, cost=5), GoalChanged("ana", 2, 5),
              GoalChanged("ben", 1, 3)]
    for by_key in (False, True):
        order = run_workers(events, workers=2, by_key=by_key)
        label = "partitioned by user" if by_key else "competing consumers"
        print(f"{label}: handled {[f'{e.user}#{e.seq}' for e in order]}"
              f" -> goals {last_arrival_wins(order)}")
    goals = SequencedGoals()
    arrivals = [events[1], events[0], events[0]]  # early, then the gap, then a redelivery
    verdicts = [f"ana#{e.seq} {goals.handle(e)}" for e in arrivals]
    print(f"sequence numbers   : {verdicts} -> goals {goals.goals}")


if __name__ == "__main__":
    main()
