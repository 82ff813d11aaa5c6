"""An immutable event envelope and its CloudEvents form, in structured and binary mode.

The envelope carries the CloudEvents 1.0 attributes (``id``, ``source``,
``type``, ``specversion``, ``subject``, ``time``, ``datacontenttype``,
``dataschema``) plus a correlation id (the conversation an event belongs to)
and a causation id (the event that caused it). CloudEvents extension names
may hold only lowercase letters and digits, so those two travel as
``correlationid`` and ``causationid``.

* Structured mode: the whole event is one JSON document, sent with
  ``content-type: application/cloudevents+json``.
* Binary mode: each attribute becomes a ``ce-`` header and the body is the
  data alone, so a broker can route on headers without parsing the body.
"""

from __future__ import annotations

import json
import operator
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

STRUCTURED = "application/cloudevents+json"
# Header values: printable ASCII except space, double quote and percent pass as they are.
SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')
ATTRIBUTES = ("id", "source", "type", "specversion", "subject", "time",
              "datacontenttype", "dataschema", "correlationid", "causationid")


def freeze(value: Any) -> Any:
    """A read-only copy: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The JSON-ready copy of a frozen value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


# --8<-- [start:envelope]
@dataclass(frozen=True, slots=True)
class Envelope:
    """One event: who says what happened to which subject, when, and why.

    Frozen all the way down: assigning an attribute raises
    ``FrozenInstanceError`` and ``data`` is a read-only mapping.
    """

    type: str
    source: str
    data: Mapping[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    dataschema: str | None = None
    datacontenttype: str = "application/json"
    specversion: str = "1.0"
    correlation_id: str = ""
    causation_id: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("type", "source", "id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("subject", "dataschema", "causation_id"):
            if getattr(self, name) is not None and not (isinstance(getattr(self, name), str)
                                                        and getattr(self, name)):
                raise ValueError(f"{name} must be None or a non-empty string")
        if self.specversion != "1.0":
            raise ValueError(f"specversion must be '1.0', got {self.specversion!r}")
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise ValueError(f"time must be a timezone-aware datetime, got {self.time!r}")
        if not isinstance(self.data, Mapping):
            raise ValueError(f"data must be a mapping, got {type(self.data).__name__}")
        for name, value in self.extensions.items():
            if not re.fullmatch(r"[a-z0-9]+", name) or name in ATTRIBUTES or name == "data":
                raise ValueError(f"extension name {name!r} must be lowercase a-z0-9 and new")
            if not isinstance(value, str):
                raise ValueError(f"extension {name!r} must be a string, got {value!r}")
        object.__setattr__(self, "data", freeze(self.data))
        object.__setattr__(self, "extensions", freeze(self.extensions))
        object.__setattr__(self, "correlation_id", self.correlation_id or self.id)

    def caused(self, type: str, source: str, data: Mapping[str, Any],
               **attributes: Any) -> Envelope:
        """A follow-up event: same correlation id, and this event as its cause."""
        return Envelope(type, source, data, correlation_id=self.correlation_id,
                        causation_id=self.id, subject=attributes.pop("subject", self.subject),
                        **attributes)
# --8<-- [end:envelope]


def _attributes(event: Envelope) -> dict[str, str]:
    values = {"id": event.id, "source": event.source, "type": event.type,
              "specversion": event.specversion, "subject": event.subject,
              "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
              "datacontenttype": event.datacontenttype, "dataschema": event.dataschema,
              "correlationid": event.correlation_id, "causationid": event.causation_id,
              **event.extensions}
    return {k: v for k, v in values.items() if v is not None}


def _envelope(attributes: Mapping[str, Any], data: Any) -> Envelope:
    missing = [a for a in ("id", "source", "type", "specversion") if a not in attributes]
    if missing:
        raise ValueError(f"not a CloudEvent: missing required attribute(s) {', '.join(missing)}")
    try:
        time = datetime.fromisoformat(attributes["time"]) if "time" in attributes else None
    except (TypeError, ValueError):
        raise ValueError(f"time is not an RFC 3339 timestamp: {attributes['time']!r}") from None
    if "data_base64" in attributes:
        raise ValueError("data_base64 (binary data) is not supported: send JSON data")
    known = {a: attributes[a] for a in ATTRIBUTES[:8] if a in attributes and a != "time"}
    return Envelope(data=data if data is not None else {}, **known,
                    **({"time": time} if time else {}),
                    correlation_id=attributes.get("correlationid", ""),
                    causation_id=attributes.get("causationid"),
                    extensions={k: v for k, v in attributes.items()
                                if k not in ATTRIBUTES and k != "data"})


# --8<-- [start:modes]
def to_structured(event: Envelope) -> tuple[dict[str, str], bytes]:
    """Structured mode: one JSON document holds the attributes and the data."""
    document = {**_attributes(event), "data": thaw(event.data)}
    return {"content-type": STRUCTURED}, json.dumps(document, ensure_ascii=False).encode()


def from_structured(body: bytes) -> Envelope:
    """Read a structured-mode CloudEvent; raise ``ValueError`` naming what is wrong."""
    document = _json(body)
    if not isinstance(document, dict):
        raise ValueError(f"not a CloudEvent: expected a JSON object, got {type(document).__name__}")
    return _envelope(document, document.get("data"))


def to_binary(event: Envelope) -> tuple[dict[str, str], bytes]:
    """Binary mode: attributes in ``ce-`` headers, the data alone in the body."""
    attributes = _attributes(event)
    headers = {"content-type": attributes.pop("datacontenttype")}
    headers |= {f"ce-{name}": quote(value, safe=SAFE) for name, value in attributes.items()}
    return headers, json.dumps(thaw(event.data), ensure_ascii=False).encode()


def from_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    """Read a binary-mode CloudEvent; header names are matched case-insensitively."""
    lower = {name.lower(): value for name, value in headers.items()}
    attributes = {n[3:]: unquote(v) for n, v in lower.items() if n.startswith("ce-")}
    if "content-type" in lower:
        attributes["datacontenttype"] = lower["content-type"]
    return _envelope(attributes, _json(body) if body else None)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"body is not JSON: {error}") from None
# --8<-- [end:modes]


def main() -> None:
    """An entry is written; the mood agent reacts; both travel as CloudEvents."""
    written = Envelope(
        type="coaching.entry.written", source="/journal", subject="entry/e-42",
        id="evt-1", time=datetime(2026, 5, 4, 21, 30, tzinfo=UTC),
        dataschema="urn:coaching:schema:coaching.entry.written:3",
        data={"entry_id": "e-42", "author_id": "ana", "text": "Ran 5 km, felt calm.",
              "tags": ["run"]})
    noted = written.caused("coaching.mood.noted", "/agents/mood", {"label": "calm"},
                           id="evt-2", time=datetime(2026, 5, 4, 21, 30, 2, tzinfo=UTC))
    print(f"{noted.type}: correlation {noted.correlation_id}, caused by {noted.causation_id}")
    for attempt in (lambda: setattr(written, "type", "coaching.entry.deleted"),
                    lambda: operator.setitem(written.data, "text", "edited"),
                    lambda: written.data["tags"].append("walk")):
        try:
            attempt()
        except (AttributeError, TypeError) as refused:
            print(f"mutation refused: {type(refused).__name__}: {refused}")
    headers, body = to_structured(written)
    print(f"\nstructured: {headers}\n{json.dumps(json.loads(body), indent=2)}")
    headers, body = to_binary(written)
    print("\nbinary:\n" + "\n".join(f"{k}: {v}" for k, v in headers.items()) + f"\n{body.decode()}")
    assert from_binary(headers, body) == written == from_structured(to_structured(written)[1])
    print("\nboth modes read back to an equal envelope")
    edited = replace(written, subject="entry/e-43")
    print(f"replace() makes a new envelope ({edited.subject}); "
          f"the original keeps {written.subject}")


if __name__ == "__main__":
    main()
