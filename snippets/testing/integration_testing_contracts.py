"""Consumer-driven contract tests for the ``journal.entry_written`` event.

Each consuming team writes down the fields it reads and the types it relies
on: a :class:`Contract`. The producing team runs every consumer's contract
against what its code really emits, in its own test suite, so a change that
would break a consumer fails the producer's build instead of a consumer in
production. A change that nobody's contract mentions is free to make.

``pytest thisfile.py`` verifies today's producer. ``main()`` verifies it and
two proposed changes: one that drops a field nobody reads and adds one (it
passes), and one that renames ``mood`` (the mood agent's contract fails).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

CET = timezone(timedelta(hours=1))


@dataclass(frozen=True)
class Entry:
    """A journal entry as the journal service stores it."""

    entry_id: str
    user_id: str
    written_at: datetime
    text: str
    mood: str | None = None
    tags: tuple[str, ...] = ()


# --8<-- [start:producers]
class JournalProducer:
    """Today's producer: the message it publishes for an entry."""

    @staticmethod
    def entry_written(entry: Entry) -> dict[str, Any]:
        return {"type": "journal.entry_written", "version": 1, "entry_id": entry.entry_id,
                "user_id": entry.user_id, "written_at": entry.written_at.isoformat(),
                "text": entry.text, "mood": entry.mood, "tags": list(entry.tags)}


class JournalProducerDropsTags(JournalProducer):
    """Proposed change: drop ``tags`` (nobody reads it), add ``word_count``."""

    @staticmethod
    def entry_written(entry: Entry) -> dict[str, Any]:
        message = JournalProducer.entry_written(entry)
        del message["tags"]
        return {**message, "word_count": len(entry.text.split())}


class JournalProducerRenamesMood(JournalProducer):
    """Proposed change, deliberately breaking: ``mood`` becomes ``feeling``."""

    @staticmethod
    def entry_written(entry: Entry) -> dict[str, Any]:
        message = JournalProducer.entry_written(entry)
        message["feeling"] = message.pop("mood")
        return message
# --8<-- [end:producers]


# --8<-- [start:contracts]
def _is_aware_datetime(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


CHECKS = {
    "str": lambda v: isinstance(v, str),
    "str or null": lambda v: v is None or isinstance(v, str),
    "ISO 8601 time with offset": _is_aware_datetime,
}


@dataclass(frozen=True)
class Contract:
    """What one consumer reads from one event type, and the type it relies on."""

    consumer: str
    event_type: str
    fields: dict[str, str]

    def problems(self, message: dict[str, Any]) -> list[str]:
        """Every way ``message`` breaks this contract, as sentences; empty if it holds."""
        if message.get("type") != self.event_type:
            return [f"{self.consumer} expects type {self.event_type!r}, got {message.get('type')!r}"]
        found = []
        for name, kind in self.fields.items():
            if name not in message:
                found.append(f"{self.consumer} reads {name!r} ({kind}): missing")
            elif not CHECKS[kind](message[name]):
                found.append(f"{self.consumer} reads {name!r} ({kind}): got {message[name]!r}")
        return found


# Each consumer team owns its file; the producer's suite reads them all.
CONTRACTS = (
    Contract("goal-tracker", "journal.entry_written",
             {"entry_id": "str", "user_id": "str", "text": "str"}),
    Contract("mood-agent", "journal.entry_written",
             {"entry_id": "str", "mood": "str or null", "written_at": "ISO 8601 time with offset"}),
    Contract("evening-reflection", "journal.entry_written",
             {"user_id": "str", "written_at": "ISO 8601 time with offset", "text": "str"}),
)
# --8<-- [end:contracts]

# Entries that exercise the corners: no mood, tags, non-ASCII text, an empty text.
SAMPLES = (
    Entry("e1", "ana", datetime(2025, 3, 14, 21, 30, tzinfo=CET), "Ran 5 km", mood="proud"),
    Entry("e2", "ana", datetime(2025, 3, 15, 7, 5, tzinfo=CET), "Müde. Kein Lauf.",
          tags=("sleep",)),
    Entry("e3", "ben", datetime(2025, 3, 15, 23, 59, tzinfo=UTC), ""),
)


# --8<-- [start:tests]
def verify(contract: Contract, producer: type[JournalProducer]) -> None:
    problems = [p for entry in SAMPLES for p in contract.problems(producer.entry_written(entry))]
    assert not problems, "; ".join(sorted(set(problems)))


def test_the_goal_trackers_contract_holds(producer=JournalProducer):
    verify(CONTRACTS[0], producer)


def test_the_mood_agents_contract_holds(producer=JournalProducer):
    verify(CONTRACTS[1], producer)


def test_the_evening_reflections_contract_holds(producer=JournalProducer):
    verify(CONTRACTS[2], producer)
# --8<-- [end:tests]


TESTS = (test_the_goal_trackers_contract_holds, test_the_mood_agents_contract_holds,
         test_the_evening_reflections_contract_holds)


def main() -> None:
    consumers = [c.consumer for c in CONTRACTS]
    print((f"{'producer':<28}" + "".join(f"{name:<20}" for name in consumers)).rstrip())
    broken = []
    for producer in (JournalProducer, JournalProducerDropsTags, JournalProducerRenamesMood):
        cells = []
        for test in TESTS:
            try:
                test(producer)
                cells.append("holds")
            except AssertionError as failure:
                cells.append("BROKEN")
                broken.append(f"  {producer.__name__}: {failure}")
        print(f"{producer.__name__:<28}" + "".join(f"{cell:<20}" for cell in cells).rstrip())
    print("\n".join(broken))
    sample = replace(SAMPLES[0], tags=("run",))
    print(f"today's message: {JournalProducer.entry_written(sample)}")


if __name__ == "__main__":
    main()
