"""Mistake: tight coupling. The consumer calls the producer back for the data.

The journal publishes a thin ``entry.written`` event with only the entry id.
The weekly-insights consumer then asks the journal's API for the entry and
reads the journal's internal column names. It is decoupled on paper only:
when the journal is down, every event fails; when the journal renames a
column, the consumer breaks; and each new consumer adds one call per event
to the journal's load.

The fix is *event-carried state transfer*: the event carries the fields
the consumers need, under names that are a published contract, mapped from
the journal's internals by the journal itself. The consumer then needs
nothing from the journal, not even that it is running.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


class Journal:
    """The producer. Its table and column names are its own business."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.mood_column = "mood_score"
        self.up = True
        self.calls = 0

    def write(self, entry_id: str, user: str, text: str, mood: int) -> None:
        """Store an entry in the journal's own table."""
        self.rows[entry_id] = {"usr": user, "txt": text, self.mood_column: mood}

    def get_entry(self, entry_id: str) -> dict[str, Any]:
        """The journal's HTTP API, as far as a consumer can tell."""
        self.calls += 1
        if not self.up:
            raise ConnectionError("journal unavailable (deploy in progress)")
        return dict(self.rows[entry_id])

    def rename_mood_column(self) -> None:
        """An internal refactor: nothing the journal published changes."""
        for row in self.rows.values():
            row["mood"] = row.pop(self.mood_column)
        self.mood_column = "mood"

    # --8<-- [start:events]
    def thin_event(self, entry_id: str) -> Event:
        """Broken: just the id; consumers must call back for the rest."""
        return {"type": "entry.written", "entry_id": entry_id}

    def carried_event(self, entry_id: str) -> Event:
        """Fixed: the fields consumers need, under the contract's names."""
        row = self.rows[entry_id]  # mapped to the contract here, by the owner
        return {"type": "entry.written", "version": 1, "entry_id": entry_id,
                "user": row["usr"], "mood": row[self.mood_column],
                "words": len(row["txt"].split())}
    # --8<-- [end:events]


# --8<-- [start:consumers]
class CallbackInsights:
    """Broken: fetches each entry from the journal and reads its columns.

    The insight itself: how many words each user wrote on good days (mood 3+).
    """

    def __init__(self, journal: Journal) -> None:
        self.journal, self.words = journal, {}

    def handle(self, event: Event) -> None:
        """Fetch the entry (one call to the journal per event), then count."""
        row = self.journal.get_entry(event["entry_id"])
        if row["mood_score"] >= 3:  # the journal's internal name
            self.words[row["usr"]] = self.words.get(row["usr"], 0) + len(row["txt"].split())


class CarriedInsights:
    """Fixed: everything it needs is in the event."""

    REQUIRED = ("entry_id", "user", "mood", "words")

    def __init__(self) -> None:
        self.words: dict[str, int] = {}

    def handle(self, event: Event) -> None:
        """Count from the event alone; refuse one that lacks a contract field."""
        missing = [name for name in self.REQUIRED if name not in event]
        if missing:
            raise ValueError(f"entry.written {event.get('entry_id')!r} lacks {missing}")
        if event["mood"] >= 3:
            self.words[event["user"]] = self.words.get(event["user"], 0) + event["words"]
# --8<-- [end:consumers]


def deliver(consumer: CallbackInsights | CarriedInsights, events: list[Event]) -> list[str]:
    """Hand every event to the consumer; return the failures instead of stopping."""
    failures = []
    for event in events:
        try:
            consumer.handle(event)
        except Exception as error:  # noqa: BLE001 - every failure is reported
            failures.append(f"{event['entry_id']}: {type(error).__name__}: {error}")
    return failures


def main() -> None:
    """Three entries; then the journal is deployed; then it renames a column."""
    journal = Journal()
    for n, (text, mood) in enumerate([("ran 5 km", 4), ("slept badly", 2), ("ran again", 5)]):
        journal.write(f"e-{n + 1}", "ana", text, mood)
    ids = list(journal.rows)
    thin = [journal.thin_event(i) for i in ids]
    carried = [journal.carried_event(i) for i in ids]

    for situation in ("journal up", "journal down", "column renamed"):
        journal.up = situation != "journal down"
        if situation == "column renamed":
            journal.rename_mood_column()
        journal.calls = 0
        broken, fixed = CallbackInsights(journal), CarriedInsights()
        broken_failures, fixed_failures = deliver(broken, thin), deliver(fixed, carried)
        print(f"{situation:<14}: callback {broken.words} ({len(broken_failures)} failed, "
              f"{journal.calls} calls to the journal) | carried {fixed.words} "
              f"({len(fixed_failures)} failed)")
        if broken_failures:
            print(f"{'':<14}  first failure: {broken_failures[0]}")


if __name__ == "__main__":
    main()
