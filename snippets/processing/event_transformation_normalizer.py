"""A normalizer: entries arrive as JSON, CSV or XML, and leave in one canonical shape.

Three producers write journal entries: the mobile app sends JSON, the bulk
importer sends one CSV line per entry, and the old web app still posts XML.
The normalizer reads the ``content-type`` of each message, sends it to the
parser for that format, and returns the same ``Entry`` whatever the source,
so that nothing downstream ever branches on the format.

Each parser validates what it reads; an unknown content type, an oversized
body, or an XML document with a DTD (the door to "billion laughs" entity
bombs) is refused with an error that says which.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

MOODS = frozenset({"low", "ok", "good"})
LIMIT = 64 * 1024


@dataclass(frozen=True)
class Entry:
    """The canonical journal entry every consumer reads."""

    entry_id: str
    user_id: str
    written_at: datetime
    mood: str
    text: str


class NormalizationError(ValueError):
    """A message the normalizer cannot turn into an Entry; the message says why."""


def _entry(fields: Mapping[str, object], source: str) -> Entry:
    """Validate the five fields, whatever format they came from."""
    values = {}
    for name in ("entry_id", "user_id", "written_at", "mood", "text"):
        value = fields.get(name)
        if not isinstance(value, str) or (name != "text" and not value):
            raise NormalizationError(f"{source}: {name!r} must be a non-empty string, "
                                     f"not {value!r}")
        values[name] = value
    if values["mood"] not in MOODS:
        raise NormalizationError(f"{source}: unknown mood {values['mood']!r}")
    try:
        written_at = datetime.fromisoformat(values["written_at"])
    except ValueError:
        raise NormalizationError(f"{source}: 'written_at' is not ISO 8601: "
                                 f"{values['written_at']!r}") from None
    if written_at.tzinfo is None:
        raise NormalizationError(f"{source}: 'written_at' has no time zone")
    return Entry(values["entry_id"], values["user_id"], written_at, values["mood"], values["text"])


# --8<-- [start:parsers]
def from_json(body: bytes) -> Entry:
    """Mobile app: ``{"entryId", "userId", "writtenAt", "mood", "text"}``."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise NormalizationError(f"json: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise NormalizationError(f"json: expected an object, not {type(data).__name__}")
    names = {"entryId": "entry_id", "userId": "user_id", "writtenAt": "written_at",
             "mood": "mood", "text": "text"}
    return _entry({ours: data.get(theirs) for theirs, ours in names.items()}, "json")


def from_csv(body: bytes) -> Entry:
    """Bulk importer: one record ``entry_id,user_id,written_at,mood,text``."""
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as error:
        raise NormalizationError(f"csv: unreadable ({error})") from None
    if len(rows) != 1 or len(rows[0]) != 5:
        raise NormalizationError(f"csv: expected one record of 5 fields, got "
                                 f"{[len(r) for r in rows]}")
    return _entry(dict(zip(("entry_id", "user_id", "written_at", "mood", "text"), rows[0])),
                  "csv")


def from_xml(body: bytes) -> Entry:
    """Old web app: ``<entry id=.. user=.. at=..><mood/><text/></entry>``."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise NormalizationError("xml: DTDs and entities are refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise NormalizationError(f"xml: not well-formed ({error})") from None
    if root.tag != "entry":
        raise NormalizationError(f"xml: root element must be <entry>, not <{root.tag}>")
    return _entry({"entry_id": root.get("id"), "user_id": root.get("user"),
                   "written_at": root.get("at"), "mood": root.findtext("mood"),
                   "text": root.findtext("text", default="")}, "xml")


PARSERS: dict[str, Callable[[bytes], Entry]] = {
    "application/json": from_json, "text/csv": from_csv, "application/xml": from_xml}


def normalize(content_type: str, body: bytes) -> Entry:
    """Pick the parser by content type (parameters such as charset are ignored)."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in PARSERS:
        raise NormalizationError(f"unsupported content type {content_type!r}; "
                                 f"expected one of {sorted(PARSERS)}")
    if len(body) > LIMIT:
        raise NormalizationError(f"{media_type}: body of {len(body)} bytes exceeds {LIMIT}")
    return PARSERS[media_type](body)
# --8<-- [end:parsers]


def main() -> None:
    """The same entry from three producers, then three messages that are refused."""
    messages = [
        ("application/json", b'{"entryId": "e-1", "userId": "u-ana", "writtenAt": '
                             b'"2024-06-10T07:30:00+02:00", "mood": "good", "text": "Ran 5 km."}'),
        ("text/csv; charset=utf-8", b'e-1,u-ana,2024-06-10T07:30:00+02:00,good,Ran 5 km.'),
        ("application/xml", b'<entry id="e-1" user="u-ana" at="2024-06-10T07:30:00+02:00">'
                            b'<mood>good</mood><text>Ran 5 km.</text></entry>'),
        ("application/xml", b'<!DOCTYPE lol [<!ENTITY a "aaaa">]><entry>&a;</entry>'),
        ("text/csv", b'e-2,u-ana,yesterday,ok,"Slept well"'),
        ("application/x-protobuf", b"\x08\x01"),
    ]
    canonical = set()
    for content_type, body in messages:
        try:
            entry = normalize(content_type, body)
            canonical.add(entry)
            print(f"{content_type:<24} -> {entry.entry_id} {entry.mood} "
                  f"{entry.written_at.isoformat()} {entry.text!r}")
        except NormalizationError as error:
            print(f"{content_type:<24} -> refused: {error}")
    print(f"distinct canonical entries from the first three: {len(canonical)}")


if __name__ == "__main__":
    main()
