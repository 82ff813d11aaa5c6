"""Upcasting on read: events stored in old shapes are read in the current one.

Stored events never change. Each event carries the schema version it was
written with (``schema_version`` in its data; events from before versioning
have none and count as version 1). Reading goes through a chain of small
functions, one per step (v1 -> v2 -> v3), so the rest of the code only ever
sees the current version. Legacy types are renamed or retired explicitly;
anything else unknown is an error that names where it is, never a silent skip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]


class Store(Protocol):
    def read_stream(self, stream: str, *, from_version: int = 1) -> Sequence[Any]: ...
    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


class UpcastError(Exception):
    """An event that cannot be brought to the current version; names stream and position."""


# --8<-- [start:chain]
Data = dict[str, Any]


def goal_set_1_to_2(data: Data) -> Data:
    """v1 kept the target as text, "3/week"; v2 has an int, sessions_per_week."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*week\s*", str(data.get("target", "")))
    if not match:
        raise ValueError(f"target {data.get('target')!r} is not '<n>/week'")
    return {"title": data["title"], "sessions_per_week": int(match[1])}


def goal_set_2_to_3(data: Data) -> Data:
    """v3 generalises the period: {"sessions": 3, "period": "week"}."""
    return {"title": data["title"],
            "target": {"sessions": data["sessions_per_week"], "period": "week"}}


def session_logged_1_to_2(data: Data) -> Data:
    """v2 records minutes; old sessions did not, so say "unknown", not 0."""
    return {**data, "minutes": None}


CURRENT = {"GoalSet": 3, "SessionLogged": 2, "EntryWritten": 1}
UPCASTERS: dict[tuple[str, int], Callable[[Data], Data]] = {
    ("GoalSet", 1): goal_set_1_to_2,
    ("GoalSet", 2): goal_set_2_to_3,
    ("SessionLogged", 1): session_logged_1_to_2,
}
RENAMED = {"GoalCreated": "GoalSet"}  # the name used until 2024
RETIRED = {"MoodNoted"}  # a feature that was removed: its events are read as nothing
# --8<-- [end:chain]


# --8<-- [start:upcast]
def upcast(event: Any) -> Any | None:
    """The event in its current version, or None for a retired type.

    Raises:
        UpcastError: unknown type, a version newer than this code, or data an
            upcaster cannot convert; the message names stream and position.
    """
    where = f"stream {event.stream!r} version {event.version} (position {event.position})"
    type_ = RENAMED.get(event.type, event.type)
    if type_ in RETIRED:
        return None
    if type_ not in CURRENT:
        raise UpcastError(f"{where}: unknown event type {event.type!r}")
    data = dict(event.data)
    version = data.pop("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= CURRENT[type_]:
        raise UpcastError(f"{where}: {type_} schema_version {version!r} is not one this code "
                          f"reads (1 to {CURRENT[type_]}); is newer code writing?")
    while version < CURRENT[type_]:
        try:
            data = UPCASTERS[(type_, version)](data)
        except (KeyError, ValueError, TypeError) as error:
            raise UpcastError(f"{where}: cannot upcast {type_} v{version}: {error}") from None
        version += 1
    return replace(event, type=type_, data={"schema_version": version, **data})


class UpcastingReader:
    """Wraps a store so every read returns current versions and skips retired types."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read_stream(self, stream: str, *, from_version: int = 1) -> list[Any]:
        return _current(self.store.read_stream(stream, from_version=from_version))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[Any]:
        return _current(self.store.read_all(after=after, limit=limit))


def _current(events: Iterable[Any]) -> list[Any]:
    return [e for e in map(upcast, events) if e is not None]
# --8<-- [end:upcast]


class MemoryStore:
    """Stored events in a list, with the Event Store page's two read methods."""

    def __init__(self, rows: Iterable[tuple[str, str, Data]]) -> None:
        versions: dict[str, int] = {}
        self.events = []
        for position, (stream, type_, data) in enumerate(rows, 1):
            versions[stream] = versions.get(stream, 0) + 1
            self.events.append(RecordedEvent(position, stream, versions[stream], type_, data))

    def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        return [e for e in self.events if e.stream == stream and e.version >= from_version]

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return self.events[after:after + limit]


# --8<-- [start:demo]
def main() -> None:
    """Three generations of goal events, read as one."""
    store = MemoryStore([
        ("goal-run", "GoalCreated", {"title": "Run", "target": "3/week"}),  # 2023, v1
        ("goal-run", "SessionLogged", {"entry_id": "e1"}),  # v1: no minutes
        ("goal-run", "MoodNoted", {"mood": "tired"}),  # retired feature
        ("goal-read", "GoalSet", {"schema_version": 2, "title": "Read",
                                  "sessions_per_week": 5}),
        ("goal-swim", "GoalSet", {"schema_version": 3, "title": "Swim",
                                  "target": {"sessions": 2, "period": "week"}}),
        ("goal-swim", "SessionLogged", {"schema_version": 2, "entry_id": "e7", "minutes": 40}),
        ("goal-old", "GoalCreated", {"title": "Stretch", "target": "daily"}),  # unparseable
    ])
    reader = UpcastingReader(store)
    for event in reader.read_all(limit=6):
        print(f"#{event.position} {event.stream:<9} {event.type:<13} {event.data}")
    try:
        reader.read_all(after=6)
    except UpcastError as error:
        print(f"error: {error}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
