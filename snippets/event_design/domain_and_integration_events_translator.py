"""Domain events in, integration events out: the journal context's published language.

Inside the journal bounded context, domain events are the team's own: named
and shaped for its code, full of internal ids, the entry's text and private
notes, and refactored whenever the model changes. Other contexts (coaching,
billing, the data team) get **integration events** instead: a small public
contract, versioned with care, with nothing private in it.

The translator at the boundary is the only place that knows both. It maps
each domain event it knows to an integration event, keeps the private ones
private by an explicit list, and holds back anything else, so a domain event
nobody thought about can never leak. Every event it publishes is checked
against the published JSON Schema, which forbids extra fields.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from jsonschema import Draft202012Validator


# --8<-- [start:domain]
@dataclass(frozen=True)
class EntryWrittenV1:
    """Domain event, first model: one text, a mood score from 1 to 5."""

    event_id: str
    entry_id: int  # the journal database's row id
    author_id: int
    written_at: datetime
    text: str
    mood_score: int | None
    private_note: str | None = None


@dataclass(frozen=True)
class EntryWritten:
    """Domain event, current model: paragraphs, a named mood, tags. Refactored freely."""

    event_id: str
    entry_id: int
    author_id: int
    written_at: datetime
    paragraphs: tuple[str, ...]
    mood: str | None  # sad, tired, neutral, calm, happy
    tags: tuple[str, ...] = ()
    private_note: str | None = None


@dataclass(frozen=True)
class EntryDeleted:
    event_id: str
    entry_id: int
    author_id: int
    deleted_at: datetime


@dataclass(frozen=True)
class DraftAutosaved:
    """Internal: the editor saved a draft. No other context needs it."""

    event_id: str
    entry_id: int
    author_id: int
    text: str
# --8<-- [end:domain]


# --8<-- [start:contract]
WRITTEN_V1 = {  # the public contract: published, reviewed, changed only with a new version
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:journal:schema:journal.entry.written:1",
    "type": "object",
    "additionalProperties": False,
    "required": ["entry", "member", "written_on", "words", "mood"],
    "properties": {
        "entry": {"type": "string", "pattern": "^ent_[0-9a-f]{16}$"},
        "member": {"type": "string", "pattern": "^mem_[0-9a-f]{16}$"},
        "written_on": {"type": "string", "format": "date"},
        "words": {"type": "integer", "minimum": 0},
        "mood": {"enum": ["low", "ok", "good", None]},
    },
}
DELETED_V1 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:journal:schema:journal.entry.deleted:1",
    "type": "object",
    "additionalProperties": False,
    "required": ["entry", "member"],
    "properties": {"entry": WRITTEN_V1["properties"]["entry"],
                   "member": WRITTEN_V1["properties"]["member"]},
}
CONTRACTS = {"journal.entry.written": WRITTEN_V1, "journal.entry.deleted": DELETED_V1}
PRIVATE = frozenset({"DraftAutosaved", "MoodRescored", "EntryViewed"})
# --8<-- [end:contract]

MOOD_FROM_SCORE = {1: "low", 2: "low", 3: "ok", 4: "good", 5: "good"}
MOOD_FROM_NAME = {"sad": "low", "tired": "low", "neutral": "ok", "calm": "good", "happy": "good"}


def _name(event: object) -> str:
    return f"{type(event).__name__} {getattr(event, 'event_id', '(no id)')}"


class TranslationError(ValueError):
    """A domain event the translator cannot map; the message names the event and field."""


class ContractViolation(AssertionError):
    """The translator produced something the published schema forbids: a bug, never sent."""


@dataclass
class Outcome:
    """What the boundary did with a batch of domain events."""

    published: list[dict[str, Any]] = field(default_factory=list)
    private: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # why each one was not published


# --8<-- [start:translator]
class JournalBoundary:
    """Translates the journal's domain events into its integration events.

    Args:
        key: secret for the public references; internal row ids never leave.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._validators = {t: Draft202012Validator(s, format_checker=Draft202012Validator
                                                    .FORMAT_CHECKER) for t, s in CONTRACTS.items()}

    def publish(self, events: list[object]) -> Outcome:
        outcome = Outcome()
        for event in events:
            name = type(event).__name__
            if name in PRIVATE:
                outcome.private.append(name)
                continue
            try:
                outcome.published.append(self.translate(event))
            except TranslationError as error:
                outcome.held.append(str(error))  # for a human: never dropped, never leaked
        return outcome

    def translate(self, event: object) -> dict[str, Any]:
        match event:
            case EntryWrittenV1():
                mood = self._mood(event, event.mood_score, MOOD_FROM_SCORE)
                data = self._written(event, len(event.text.split()), mood)
            case EntryWritten():
                mood = self._mood(event, event.mood, MOOD_FROM_NAME)
                data = self._written(event, sum(len(p.split()) for p in event.paragraphs), mood)
            case EntryDeleted():
                data = {"entry": self._ref("ent", event.entry_id),
                        "member": self._ref("mem", event.author_id)}
                return self._envelope(event, "journal.entry.deleted", data, event.deleted_at)
            case _:
                raise TranslationError(f"{_name(event)}: no public translation for this type; "
                                       "write one, or list it in PRIVATE")
        return self._envelope(event, "journal.entry.written", data, event.written_at)

    def _written(self, event: EntryWrittenV1 | EntryWritten, words: int,
                 mood: str | None) -> dict[str, Any]:
        if event.written_at.tzinfo is None:
            raise TranslationError(f"{_name(event)}: written_at has no time zone")
        return {"entry": self._ref("ent", event.entry_id), "member": self._ref("mem", event.author_id),
                "written_on": event.written_at.date().isoformat(), "words": words, "mood": mood}

    def _mood(self, event: object, value: object, table: dict) -> str | None:
        if value is not None and value not in table:
            raise TranslationError(f"{_name(event)}: mood {value!r} has no public meaning")
        return None if value is None else table[value]

    def _ref(self, kind: str, internal_id: object) -> str:
        digest = hmac.new(self._key, f"{kind}:{internal_id}".encode(), hashlib.sha256)
        return f"{kind}_{digest.hexdigest()[:16]}"

    def _envelope(self, event: Any, type_: str, data: dict[str, Any],
                  time: datetime) -> dict[str, Any]:
        errors = sorted(e.message for e in self._validators[type_].iter_errors(data))
        if errors:
            raise ContractViolation(f"{type_} from {event.event_id} breaks its contract: {errors}")
        return {"id": self._ref("evt", event.event_id),  # the same on every redelivery
                "type": type_, "dataschema": CONTRACTS[type_]["$id"],
                "time": time.astimezone(UTC).isoformat(), "data": data}
# --8<-- [end:translator]


@dataclass(frozen=True)
class EntryPinned:
    """A domain event added by the journal team last week; nobody wrote a translation yet."""

    event_id: str
    entry_id: int


@dataclass(frozen=True)
class MoodRescored:
    event_id: str
    entry_id: int
    model: str


def main() -> None:
    """One entry before and after the domain refactoring, and what leaves the boundary."""
    boundary = JournalBoundary(key=b"demo key: keep the real one in a secret store")
    evening = datetime(2025, 3, 3, 21, 15, tzinfo=timezone(timedelta(hours=1)))
    note = "tell nobody: I am thinking of quitting"
    old = EntryWrittenV1("e-101", 4711, 42, evening, "Slept badly again, long day at work",
                         mood_score=2, private_note=note)
    new = EntryWritten("e-101", 4711, 42, evening, ("Slept badly again,", "long day at work"),
                       mood="tired", tags=("sleep",), private_note=note)
    outcome = boundary.publish([old, DraftAutosaved("e-102", 4711, 42, "Slept bad"),
                                MoodRescored("e-103", 4711, "mood-model-7"),
                                EntryPinned("e-104", 4711),
                                EntryWritten("e-105", 4712, 42, evening, ("ok",), mood="furious"),
                                EntryDeleted("e-106", 4711, 42, evening + timedelta(hours=1))])
    for event in outcome.published:
        print(f"published  {event['type']} ({event['dataschema'].rsplit(':', 1)[1]}) "
              f"id={event['id']}\n           {json.dumps(event['data'])}")
    print(f"private    {outcome.private}")
    for reason in outcome.held:
        print(f"held       {reason}")
    print(f"domain v1 and v2 of e-101 publish the same event: "
          f"{boundary.translate(old) == boundary.translate(new)}")
    wire = json.dumps(outcome.published)
    print(f"internal ids, text or note on the wire: "
          f"{any(s in wire for s in ('4711', 'Slept', note))}")


if __name__ == "__main__":
    main()
