"""Upcasters: stored events of an old version become the current version when they are read.

Each upcaster is a small pure function from version ``n`` to ``n + 1`` of one
event type. The chain runs on read, so the events already stored stay as they
were written, and the code that handles events only ever sees the latest
version. ``coaching.entry.written`` went through three versions:

* v1: ``mood`` was a word.
* v2: ``mood`` became ``{"label", "score"}`` and ``tags`` appeared.
* v3: ``user_id`` was renamed ``author_id``; ``word_count`` and ``language`` appeared.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MOOD_SCORES = {"awful": 1, "low": 2, "ok": 3, "good": 4, "great": 5}
Data = dict[str, Any]

# --8<-- [start:schemas]
_MOOD_WORD = {"type": "string", "enum": list(MOOD_SCORES)}
_MOOD = {"type": "object", "properties": {"label": _MOOD_WORD,
                                          "score": {"type": "integer", "minimum": 1, "maximum": 5}},
         "required": ["label", "score"]}
_TAGS = {"type": "array", "items": {"type": "string"}}
SCHEMAS = {  # coaching.entry.written, by version
    1: {"type": "object", "required": ["entry_id", "user_id", "text", "mood"],
        "properties": {"entry_id": {"type": "string"}, "user_id": {"type": "string"},
                       "text": {"type": "string"}, "mood": _MOOD_WORD}},
    2: {"type": "object", "required": ["entry_id", "user_id", "text", "mood", "tags"],
        "properties": {"entry_id": {"type": "string"}, "user_id": {"type": "string"},
                       "text": {"type": "string"}, "mood": _MOOD, "tags": _TAGS}},
    3: {"type": "object",
        "required": ["entry_id", "author_id", "text", "mood", "tags", "word_count", "language"],
        "properties": {"entry_id": {"type": "string"}, "author_id": {"type": "string"},
                       "text": {"type": "string"}, "mood": _MOOD, "tags": _TAGS,
                       "word_count": {"type": "integer", "minimum": 0},
                       "language": {"type": "string", "default": "und"}}},
}
# --8<-- [end:schemas]


class UnknownEvent(LookupError):
    """No upcaster chain knows this type or version: the event is refused, not dropped."""


class MalformedEvent(ValueError):
    """A stored event does not hold what its version says: refused, naming where."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store keeps it: its type, the version it was written in, its data."""

    type: str
    version: int
    data: Data


# --8<-- [start:upcasters]
def entry_v1_to_v2(data: Data) -> Data:
    """The mood word becomes a label with a score; entries get (empty) tags."""
    mood = data["mood"]
    if not isinstance(mood, str) or mood not in MOOD_SCORES:
        raise ValueError(f"v1 mood {mood!r} is not one of {', '.join(MOOD_SCORES)}")
    return {**data, "mood": {"label": mood, "score": MOOD_SCORES[mood]}, "tags": []}


def entry_v2_to_v3(data: Data) -> Data:
    """``user_id`` is renamed ``author_id``; ``word_count`` is derived; language is unknown."""
    if not isinstance(data["text"], str):
        raise TypeError("'text' is not a string")
    rest = {k: v for k, v in data.items() if k != "user_id"}
    return {**rest, "author_id": data["user_id"], "word_count": len(data["text"].split()),
            "language": "und"}


UPCASTERS: dict[tuple[str, int], Callable[[Data], Data]] = {
    ("coaching.entry.written", 1): entry_v1_to_v2,
    ("coaching.entry.written", 2): entry_v2_to_v3,
}
LATEST = {"coaching.entry.written": 3, "coaching.goal.set": 1}


def upcast(event: StoredEvent) -> StoredEvent:
    """The same event at the latest version of its type, by running the chain of upcasters.

    The result is a deep copy: changing it never changes the stored event.

    Raises:
        UnknownEvent: the type is unknown, or the version is newer than this
            reader (a producer was upgraded first) or has no upcaster.
        MalformedEvent: the stored data is malformed for its version (the
            message names the type, the version, the step and the field).
    """
    if event.type not in LATEST:
        raise UnknownEvent(f"unknown event type {event.type!r}; known: {', '.join(LATEST)}")
    latest, version = LATEST[event.type], event.version
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= latest:
        raise UnknownEvent(f"{event.type} v{version} is unknown here (this reader knows "
                           f"v1 to v{latest}); upgrade the reader before the producer")
    if not isinstance(event.data, dict):
        raise MalformedEvent(f"{event.type} v{version} cannot be upcast: data is a "
                             f"{type(event.data).__name__}, not a JSON object")
    data = copy.deepcopy(event.data)  # the reader may change its copy; the store's stays
    while version < latest:
        step = UPCASTERS.get((event.type, version))
        if step is None:
            raise UnknownEvent(f"no upcaster from {event.type} v{version} to v{version + 1}")
        try:
            data = step(data)
        except KeyError as missing:
            raise MalformedEvent(f"{event.type} v{event.version} cannot be upcast (v{version} "
                                 f"to v{version + 1}): missing field {missing}") from None
        except (TypeError, ValueError) as error:
            raise MalformedEvent(f"{event.type} v{event.version} cannot be upcast (v{version} "
                                 f"to v{version + 1}): {error}") from None
        version += 1
    return StoredEvent(event.type, version, data)
# --8<-- [end:upcasters]


def main() -> None:
    """Read a store holding all three versions: the handler sees only v3."""
    store = [
        StoredEvent("coaching.entry.written", 1,
                    {"entry_id": "e-1", "user_id": "ana", "text": "Slept badly", "mood": "low"}),
        StoredEvent("coaching.entry.written", 2,
                    {"entry_id": "e-2", "user_id": "ana", "text": "Ran 5 km today",
                     "mood": {"label": "great", "score": 5}, "tags": ["run"]}),
        StoredEvent("coaching.entry.written", 3,
                    {"entry_id": "e-3", "author_id": "ana", "text": "Rest day",
                     "mood": {"label": "ok", "score": 3}, "tags": [], "word_count": 2,
                     "language": "en"}),
        StoredEvent("coaching.entry.written", 4, {"entry_id": "e-4"}),
        StoredEvent("coaching.entry.deleted", 1, {"entry_id": "e-1"}),
    ]
    for stored in store:
        try:
            current = upcast(stored)
        except UnknownEvent as refused:
            print(f"stored v{stored.version} -> refused: {refused}")
            continue
        print(f"stored v{stored.version} -> v{current.version}: {current.data}")


if __name__ == "__main__":
    main()
