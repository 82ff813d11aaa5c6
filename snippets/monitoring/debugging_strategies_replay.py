"""Reproduce a bug by replaying events, and find when it started by travelling back in time.

Ana reports that her goal says she wrote on 8 of 7 evenings. The events are
all in the event store, so nothing has to be guessed:

1. **Time travel.** Fold the events up to any position to see the state as it
   was then; a binary search over positions finds the first event after
   which the state breaks an invariant (never more sessions than evenings
   she wrote on). That is ``log2(n)`` folds, not ``n``, and it is only
   sound for an invariant that stays broken once broken.
2. **Replay.** Replaying the goal's events into a fresh projection reproduces
   the bug exactly, with side effects switched off: a replay must record the
   nudges it would send, never send them again.
3. **Fixture.** The events up to the first bad one become a regression test
   that fails on the buggy projection and passes on the fix.

The store is SQLite (stdlib); the Event Sourcing chapter builds a full one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event with its global position."""

    position: int
    stream: str
    type: str
    data: dict[str, str]


class EventStore:
    """An append-only SQLite table of events, readable up to any position."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY,"
                        " stream TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL)")

    def append(self, stream: str, type_: str, **data: str) -> int:
        """Append one event; return its position."""
        with self.db:
            return self.db.execute("INSERT INTO events (stream, type, data) VALUES (?, ?, ?)",
                                   (stream, type_, json.dumps(data))).lastrowid

    def read(self, *, stream: str | None = None, up_to: int | None = None) -> list[Event]:
        """Events in position order, optionally of one stream and up to a position."""
        rows = self.db.execute(
            "SELECT position, stream, type, data FROM events WHERE (? IS NULL OR stream = ?)"
            " AND (? IS NULL OR position <= ?) ORDER BY position", (stream, stream, up_to, up_to))
        return [Event(p, s, t, json.loads(d)) for p, s, t, d in rows]


@dataclass
class WeeklyGoal:
    """The projection: evenings written this week, and a nudge when the target is met."""

    target: int = 7
    distinct_days: bool = False  # False is the bug: it counts entries, not evenings
    sessions: int = 0
    week_start: date | None = None
    days: set[str] = field(default_factory=set)
    nudge: Callable[[str], None] = print

    def apply(self, event: Event) -> None:
        if event.type == "GoalSet":
            self.week_start, self.sessions, self.days = date.fromisoformat(event.data["week"]), 0, set()
        elif event.type == "EntryWritten":
            if self.distinct_days and event.data["day"] in self.days:
                return
            self.days.add(event.data["day"])
            self.sessions += 1
            if self.sessions == self.target:
                self.nudge(f"goal reached on {event.data['day']}")

    def evenings_so_far(self) -> int:
        """Evenings that have passed in the week, up to the last entry seen."""
        if self.week_start is None or not self.days:
            return 0
        return (date.fromisoformat(max(self.days)) - self.week_start).days + 1


def replay(events: list[Event], **options: object) -> tuple[WeeklyGoal, list[str]]:
    """Fold ``events`` into a fresh projection; nudges are recorded, not sent."""
    recorded: list[str] = []
    goal = WeeklyGoal(nudge=recorded.append, **options)  # type: ignore[arg-type]
    for event in events:
        goal.apply(event)
    return goal, recorded


def healthy(goal: WeeklyGoal) -> bool:
    """The invariant: never more sessions than distinct evenings written on.

    It is monotone: a second entry on one evening breaks it for good, since a
    new evening raises both sides by one. "No more sessions than evenings
    passed" would not be: a later evening would hide the bug from a bisection.
    """
    return goal.sessions <= len(goal.days)


# --8<-- [start:bisect]
def first_bad_position(store: EventStore, stream: str) -> int | None:
    """Binary search for the first position after which the invariant fails.

    Sound only for a monotone invariant (see :func:`healthy`); returns None
    if the latest state is healthy. The stream is read once, so events that
    arrive during the search cannot mislead it: it bisects that snapshot.
    """
    events = store.read(stream=stream)
    if not events or healthy(replay(events)[0]):
        return None
    low, high = 0, len(events) - 1  # events[high] is known bad
    while low < high:
        middle = (low + high) // 2
        if healthy(replay(events[:middle + 1])[0]):  # the state as of events[middle]
            low = middle + 1
        else:
            high = middle
    return events[low].position
# --8<-- [end:bisect]


def main() -> None:
    """Ana's week: seven evenings, one with two entries; find, reproduce, and fix the bug."""
    store = EventStore()
    stream, monday = "goal-ana-evenings", date(2025, 3, 3)
    store.append(stream, "GoalSet", week=monday.isoformat())
    for offset, entry in [(0, "e1"), (1, "e2"), (2, "e3"), (2, "e4"), (3, "e5"), (4, "e6"),
                          (5, "e7"), (6, "e8")]:
        store.append("journal-ana", "EntryWritten", entry=entry)  # another stream, interleaved
        store.append(stream, "EntryWritten", day=(monday + timedelta(offset)).isoformat(), entry=entry)

    now, nudges = replay(store.read(stream=stream))
    print(f"now: {now.sessions} sessions in {now.evenings_so_far()} evenings, nudges {nudges}")
    for position in (7, 9):
        then, _ = replay(store.read(stream=stream, up_to=position))
        print(f"as of position {position}: {then.sessions} sessions in {then.evenings_so_far()} evenings")
    bad = first_bad_position(store, stream)
    culprit = store.read(up_to=bad)[-1]
    print(f"first bad position: {bad} = {culprit.type} {culprit.data}")
    fixture = store.read(stream=stream, up_to=bad)
    print(f"regression fixture: {len(fixture)} events of {len(store.read())} in the store")
    for name, options in [("buggy", {}), ("fixed", {"distinct_days": True})]:
        goal, nudges = replay(fixture, **options)
        print(f"{name}: sessions={goal.sessions} healthy={healthy(goal)} nudges={nudges}")
    fixed, nudges = replay(store.read(stream=stream), distinct_days=True)
    print(f"fixed, whole week: {fixed.sessions} sessions, nudges {nudges}")


if __name__ == "__main__":
    main()
