"""Mistake: no idempotency. A redelivered event is counted again.

Every broker in production delivers *at least once*: a consumer that
crashes after doing its work but before acknowledging gets the same message
again, and a producer that retries a publish can store it twice. The goal
tracker below counts running sessions from ``session.logged`` events.

``CountingTracker`` adds one per delivery, so every redelivery inflates
Ana's progress. ``IdempotentTracker`` records the event id in the same
SQLite transaction as the count: a second delivery finds the id and
changes nothing, and a crash between the two statements rolls back both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """A ``session.logged`` event: its id is assigned once, by the producer."""

    id: str
    user: str

    def __post_init__(self) -> None:
        for name in ("id", "user"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"event {name} must be a non-empty str, "
                                 f"not {getattr(self, name)!r}")


class Crash(Exception):
    """The consumer process dies at this point."""


class CountingTracker:
    """Broken: one more session per delivery."""

    def __init__(self, path: str = ":memory:") -> None:
        # a file ``path`` lets several consumer processes share one database
        self.db = sqlite3.connect(path, isolation_level=None, timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS progress "
                        "(user TEXT PRIMARY KEY, sessions INTEGER)")

    # --8<-- [start:broken]
    def handle(self, event: Event) -> None:
        self.db.execute("INSERT INTO progress VALUES (?, 1) ON CONFLICT (user) "
                        "DO UPDATE SET sessions = sessions + 1", (event.user,))
    # --8<-- [end:broken]

    def sessions(self, user: str) -> int:
        """Sessions counted for ``user``."""
        row = self.db.execute("SELECT sessions FROM progress WHERE user = ?", (user,)).fetchone()
        return row[0] if row else 0


class IdempotentTracker(CountingTracker):
    """Fixed: the event id and the count are written in one transaction."""

    def __init__(self, crash_between: Callable[[Event], None] = lambda event: None,
                 path: str = ":memory:") -> None:
        super().__init__(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY)")
        self.crash_between = crash_between  # a test hook: dies between the two writes

    # --8<-- [start:fixed]
    def handle(self, event: Event) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seen = self.db.execute("INSERT INTO processed VALUES (?) ON CONFLICT DO NOTHING",
                                   (event.id,)).rowcount == 0
            if not seen:
                self.crash_between(event)
                super().handle(event)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")  # neither the id nor the count is kept
            raise
    # --8<-- [end:fixed]


def deliver(tracker: CountingTracker, events: list[Event], crash_before_ack: set[str]) -> int:
    """An at-least-once broker: a consumer that dies before its ack gets the event again.

    Returns the number of deliveries it made.
    """
    deliveries, queue, crashed = 0, list(events), set()
    while queue:
        event = queue.pop(0)
        deliveries += 1
        try:
            tracker.handle(event)
        except Crash:
            queue.insert(0, event)  # never acknowledged: delivered again
            continue
        if event.id in crash_before_ack and event.id not in crashed:
            crashed.add(event.id)
            queue.insert(0, event)  # handled, but the ack was lost with the process
    return deliveries


def main() -> None:
    """Three sessions; one ack is lost, and the producer sent one event twice."""
    events = [Event("ev-1", "ana"), Event("ev-2", "ana"), Event("ev-2", "ana"),
              Event("ev-3", "ana")]
    for tracker in (CountingTracker(), IdempotentTracker()):
        deliveries = deliver(tracker, events, crash_before_ack={"ev-1"})
        print(f"{type(tracker).__name__:<17}: {deliveries} deliveries of 3 sessions -> "
              f"Ana has {tracker.sessions('ana')}")


if __name__ == "__main__":
    main()
