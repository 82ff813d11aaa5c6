"""The same coaching flow with events: the journal records a fact and moves on.

The journal appends an ``EntryWritten`` event to a log and returns. Each
consumer keeps its own offset into that log and catches up when it can, so
a consumer that is down delays only itself. The price: for a while the
read side is stale (eventual consistency), and the story of one entry is
spread across consumers, held together only by the ids the event carries.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EntryWritten:
    """Event: a journal entry was written."""

    entry_id: str
    text: str
    goal: str
    correlation_id: str


@dataclass
class Consumer:
    """One subscriber with its own position in the log."""

    name: str
    handle: Callable[[EntryWritten], None]
    offset: int = 0
    up: bool = True


@dataclass
class EventLog:
    """An append-only log that consumers read at their own pace."""

    events: list[EntryWritten] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)

    def append(self, event: EntryWritten) -> None:
        self.events.append(event)

    def deliver(self) -> None:
        """Let every running consumer catch up from its offset."""
        for consumer in self.consumers:
            while consumer.up and consumer.offset < len(self.events):
                event = self.events[consumer.offset]
                try:
                    consumer.handle(event)
                except Exception as error:  # retried from the same offset next time
                    self.trail.append(f"{event.correlation_id} {event.entry_id} -> "
                                      f"{consumer.name} failed: {error}")
                    break
                consumer.offset += 1  # advance only after the handler succeeded
                self.trail.append(f"{event.correlation_id} {event.entry_id} -> {consumer.name}")

    def lag(self, name: str) -> int:
        """How many events the named consumer has not processed yet."""
        consumer = next(c for c in self.consumers if c.name == name)
        return len(self.events) - consumer.offset


@dataclass
class Journal:
    """Saves an entry and publishes one event; knows no consumer."""

    log: EventLog
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def save_entry(self, text: str, goal: str, request_id: str) -> str:
        entry_id = f"entry-{next(self._ids)}"
        self.log.append(EntryWritten(entry_id, text, goal, correlation_id=request_id))
        return entry_id


def main() -> None:
    """The coach goes down; the journal keeps working; everyone catches up."""
    progress: dict[str, int] = {}
    notes: list[str] = []
    reflections: list[str] = []
    log = EventLog()
    log.consumers = [
        Consumer("goals", lambda e: progress.update({e.goal: progress.get(e.goal, 0) + 1})),
        Consumer("coach", lambda e: notes.append(f"noticed: {e.text[:24]}")),
        Consumer("reflections", lambda e: reflections.append(e.text)),
    ]
    journal = Journal(log)

    log.consumers[1].up = False  # the coach is down all morning
    journal.save_entry("Ran 3 km before work", "run 5 km", request_id="req-7")
    first = progress.get("run 5 km", 0)
    print(f"entry-1 saved; goal progress read at once: {first}  <- stale")
    log.deliver()
    print(f"after delivery: progress {progress['run 5 km']}, coach lag {log.lag('coach')}")
    journal.save_entry("Skipped the run, rain", "run 5 km", request_id="req-8")
    log.deliver()
    print(f"entry-2 saved while the coach is down; coach lag {log.lag('coach')}")

    log.consumers[1].up = True  # the coach comes back and catches up
    log.deliver()
    print(f"coach back: {len(notes)} notes, lag {log.lag('coach')}, reflections {len(reflections)}")
    print("what happened to req-8, rebuilt from the trail:")
    for line in (t for t in log.trail if t.startswith("req-8")):
        print(f"  {line}")


if __name__ == "__main__":
    main()
