"""The coaching app's event catalogue: every event type with its versions, schemas and parties.

This module is the single source of truth. The catalogue page of this site
and the AsyncAPI documents are generated from it when the site is built, and
the tests validate every example against its schema, so none of them can
drift from the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

Schema = dict[str, Any]
FORMATS = Draft202012Validator.FORMAT_CHECKER  # "date" needs no extra package


@dataclass(frozen=True)
class EventType:
    """One event type of the catalogue."""

    type: str
    summary: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    schemas: dict[int, Schema]
    examples: dict[int, dict[str, Any]]

    @property
    def latest(self) -> int:
        """The version that producers write now."""
        return max(self.schemas)


def _obj(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "properties": properties, "required": required}


STR, ID = {"type": "string"}, {"type": "string", "minLength": 1}
MOOD_WORD = {"type": "string", "enum": ["awful", "low", "ok", "good", "great"]}
MOOD = _obj(["label", "score"], label=MOOD_WORD,
            score={"type": "integer", "minimum": 1, "maximum": 5})
TAGS = {"type": "array", "items": STR}

# --8<-- [start:entry]
ENTRY_WRITTEN = EventType(
    type="coaching.entry.written",
    summary="A person saved a journal entry.",
    producers=("journal",),
    consumers=("mood-agent", "goal-tracker", "reflection-writer"),
    schemas={
        1: _obj(["entry_id", "user_id", "text", "mood"], entry_id=STR, user_id=STR, text=STR,
                mood=MOOD_WORD),
        2: _obj(["entry_id", "user_id", "text", "mood", "tags"], entry_id=STR, user_id=STR,
                text=STR, mood=MOOD, tags=TAGS),
        3: _obj(["entry_id", "author_id", "text", "mood", "tags", "word_count", "language"],
                entry_id=STR, author_id=STR, text=STR, mood=MOOD, tags=TAGS,
                word_count={"type": "integer", "minimum": 0},
                language={"type": "string", "default": "und"}),
    },
    examples={
        1: {"entry_id": "e-1", "user_id": "ana", "text": "Slept badly", "mood": "low"},
        2: {"entry_id": "e-2", "user_id": "ana", "text": "Ran 5 km",
            "mood": {"label": "great", "score": 5}, "tags": ["run"]},
        3: {"entry_id": "e-3", "author_id": "ana", "text": "Rest day",
            "mood": {"label": "ok", "score": 3}, "tags": [], "word_count": 2, "language": "en"},
    },
)
# --8<-- [end:entry]

CATALOGUE = (
    ENTRY_WRITTEN,
    EventType(
        "coaching.goal.set", "A person set a new goal.", ("goal-service",),
        ("goal-tracker", "goal-agent"),
        {1: _obj(["goal_id", "user_id", "title", "sessions_per_week"], goal_id=ID, user_id=ID,
                 title={"type": "string", "minLength": 1, "maxLength": 200},
                 sessions_per_week={"type": "integer", "minimum": 1, "maximum": 14})},
        {1: {"goal_id": "g-1", "user_id": "ana", "title": "Run 5 km", "sessions_per_week": 3}}),
    EventType(
        "coaching.goal.achieved", "A goal's target was met for the first time.",
        ("goal-tracker",), ("goal-agent", "reflection-writer"),
        {1: _obj(["goal_id", "user_id", "sessions_done", "achieved_on"], goal_id=ID, user_id=ID,
                 sessions_done={"type": "integer", "minimum": 1},
                 achieved_on={"type": "string", "format": "date"})},
        {1: {"goal_id": "g-1", "user_id": "ana", "sessions_done": 12,
             "achieved_on": "2026-05-30"}}),
    EventType(
        "coaching.agent.registered", "A coaching agent joined and said what it listens to.",
        ("agent-runtime",), ("journal", "reflection-writer"),
        {1: _obj(["agent_id", "name", "listens_to"], agent_id=ID, name=STR,
                 listens_to={"type": "array", "items": STR})},
        {1: {"agent_id": "mood-agent", "name": "Mood agent",
             "listens_to": ["coaching.entry.written"]}}),
    EventType(
        "coaching.feedback.given", "A coaching agent answered an entry.",
        ("mood-agent", "goal-agent"), ("journal", "reflection-writer"),
        {1: _obj(["feedback_id", "entry_id", "agent_id", "text"], feedback_id=ID, entry_id=ID,
                 agent_id=ID, text={"type": "string", "maxLength": 2000})},
        {1: {"feedback_id": "f-1", "entry_id": "e-3", "agent_id": "mood-agent",
             "text": "Rest days count too."}}),
    EventType(
        "coaching.reflection.composed", "The evening reflection of one day is ready.",
        ("reflection-writer",), ("notifier",),
        {1: _obj(["reflection_id", "user_id", "day", "summary", "entry_ids"], reflection_id=ID,
                 user_id=ID, day={"type": "string", "format": "date"}, summary=STR,
                 entry_ids={"type": "array", "items": STR})},
        {1: {"reflection_id": "r-1", "user_id": "ana", "day": "2026-05-04",
             "summary": "A calm day with one run.", "entry_ids": ["e-2", "e-3"]}}),
)


def as_json() -> list[dict[str, Any]]:
    """The catalogue as plain JSON-ready data, for tools that do not import this module."""
    return [{"type": e.type, "summary": e.summary, "producers": list(e.producers),
             "consumers": list(e.consumers), "latest": e.latest,
             "versions": [{"version": v, "schema": e.schemas[v], "example": e.examples[v]}
                          for v in sorted(e.schemas)]} for e in CATALOGUE]


def problems() -> list[str]:
    """Everything wrong with the catalogue: invalid schemas or examples, missing parties."""
    found = []
    for event in CATALOGUE:
        if not event.producers or not event.consumers:
            found.append(f"{event.type}: needs at least one producer and one consumer")
        if sorted(event.schemas) != list(range(1, event.latest + 1)):
            found.append(f"{event.type}: versions must run 1..n without gaps")
        for version, schema in event.schemas.items():
            Draft202012Validator.check_schema(schema)
            example = event.examples.get(version)
            if example is None:
                found.append(f"{event.type} v{version}: no example")
                continue
            found += [f"{event.type} v{version} example: {e.message}"
                      for e in Draft202012Validator(
                          schema, format_checker=FORMATS).iter_errors(example)]
    return found


def main() -> None:
    """Print who produces and who consumes each event, and check every example."""
    for event in CATALOGUE:
        print(f"{event.type:29} v{event.latest}  {', '.join(event.producers):22} -> "
              f"{', '.join(event.consumers)}")
    found = problems()
    examples = sum(len(e.examples) for e in CATALOGUE)
    print(f"\n{examples} examples checked against their schemas: "
          f"{'all valid' if not found else found}")


if __name__ == "__main__":
    main()
