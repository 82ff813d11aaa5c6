"""Validate events where they enter the system, with JSON Schema, and report every problem.

A consumer that reads raw bytes from a broker checks them once, at the
boundary: size, JSON syntax, duplicate keys, the CloudEvents attributes, then
the data against the schema of the event's type. A malformed event is refused
with one line per offending field; a valid one always passes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

MAX_BYTES = 256 * 1024
FORMATS = FormatChecker([])  # only the formats registered below are checked


RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    """An RFC 3339 timestamp with its UTC offset (jsonschema alone would need an extra package)."""
    if not isinstance(value, str):
        return True  # "type" reports non-strings
    try:
        return bool(RFC3339.fullmatch(value)) and datetime.fromisoformat(value) is not None
    except ValueError:  # well formed but impossible: 2026-02-30
        return False


# --8<-- [start:schemas]
ENVELOPE = {
    "type": "object",
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){2,}$"},
        "time": {"type": "string", "format": "date-time"},
        "subject": {"type": "string", "minLength": 1},
        "datacontenttype": {"const": "application/json"},
        "correlationid": {"type": "string", "minLength": 1},
        "data": {"type": "object"},
    },
    "required": ["specversion", "id", "source", "type", "time", "data"],
}
DATA = {
    "coaching.entry.written": {
        "type": "object",
        "properties": {
            "entry_id": {"type": "string", "minLength": 1},
            "author_id": {"type": "string", "minLength": 1},
            "text": {"type": "string", "maxLength": 10000},
            "mood": {"enum": ["great", "good", "ok", "low", "awful"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
        },
        "required": ["entry_id", "author_id", "text"],
    },
    "coaching.goal.set": {
        "type": "object",
        "properties": {
            "goal_id": {"type": "string", "minLength": 1},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "sessions_per_week": {"type": "integer", "minimum": 1, "maximum": 14},
        },
        "required": ["goal_id", "title", "sessions_per_week"],
    },
}
# --8<-- [end:schemas]


class InvalidEvent(ValueError):
    """An event refused at the boundary; ``problems`` holds (field, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("invalid event:\n" + "\n".join(f"  {f}: {r}" for f, r in problems))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts = Counter(k for k, _ in pairs)
    if dupes := sorted(k for k, n in counts.items() if n > 1):
        raise InvalidEvent([(k, "appears twice; readers would disagree on its value")
                            for k in dupes])
    return dict(pairs)


def _problems(validator: Draft202012Validator, document: Any, prefix: str) -> list[tuple[str, str]]:
    found = []
    for error in validator.iter_errors(document):
        where = ".".join([prefix, *(str(p) for p in error.absolute_path)]).strip(".")
        if error.validator == "required":
            name = error.message.split("'")[1]
            found.append((f"{where}.{name}".strip("."), "is required"))
        else:
            found.append((where or "(event)", error.message))
    return sorted(found)


ENVELOPE_CHECK = Draft202012Validator(ENVELOPE, format_checker=FORMATS)
DATA_CHECKS = {t: Draft202012Validator(s, format_checker=FORMATS) for t, s in DATA.items()}


# --8<-- [start:parse]
def parse_event(raw: bytes) -> dict[str, Any]:
    """The event in ``raw`` (a structured CloudEvent), or :class:`InvalidEvent` listing why not."""
    if len(raw) > MAX_BYTES:
        raise InvalidEvent([("(event)", f"is {len(raw)} bytes; the limit is {MAX_BYTES}")])
    try:
        event = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent([("(event)", f"is not JSON: {error}")]) from None
    except RecursionError:
        raise InvalidEvent([("(event)", "is nested too deeply to parse")]) from None
    if not isinstance(event, dict):
        raise InvalidEvent([("(event)", f"must be a JSON object, not {type(event).__name__}")])
    problems = _problems(ENVELOPE_CHECK, event, "")
    kind = event.get("type")
    if isinstance(kind, str) and kind in DATA_CHECKS and isinstance(event.get("data"), dict):
        problems += _problems(DATA_CHECKS[kind], event["data"], "data")
    elif isinstance(kind, str) and not any(f == "type" for f, _ in problems):
        problems.append(("type", f"no schema for {kind!r}; known: {', '.join(sorted(DATA))}"))
    if problems:
        raise InvalidEvent(problems)
    return event
# --8<-- [end:parse]


def main() -> None:
    """One valid event, then a malformed one with four problems, all reported at once."""
    valid = {"specversion": "1.0", "id": "evt-1", "source": "/journal",
             "type": "coaching.goal.set", "time": "2026-05-04T07:00:00+02:00",
             "data": {"goal_id": "g-1", "title": "Run 5 km", "sessions_per_week": 3}}
    event = parse_event(json.dumps(valid).encode())
    print(f"accepted: {event['type']} {event['data']['title']!r}")
    malformed = {**valid, "time": "yesterday evening", "type": "coaching.goal.set",
                 "data": {"title": "", "sessions_per_week": 30, "colour": "red"}}
    for raw in (json.dumps(malformed).encode(), b'{"id": "a", "id": "b"}', b"\xff{"):
        try:
            parse_event(raw)
        except InvalidEvent as refused:
            print(f"refused: {refused}")


if __name__ == "__main__":
    main()
