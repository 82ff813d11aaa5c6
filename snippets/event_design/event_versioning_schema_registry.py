"""A schema registry that refuses an incompatible event schema and says which change breaks whom.

Compatibility modes, with the names that Confluent's and Apicurio's registries use:

* ``BACKWARD``: consumers on the new schema read events written with the old
  one (upgrade consumers first).
* ``FORWARD``: consumers still on the old schema read events written with the
  new one (upgrade producers first).
* ``FULL``: both, so they upgrade in any order. ``NONE``: no check.
* A ``_TRANSITIVE`` suffix checks against every earlier version, not only the latest.

The checker compares two JSON Schemas field by field. It models a tolerant
reader: one that fills in a field's ``default`` when the field is missing and
ignores fields it does not declare, unless its schema is closed
(``additionalProperties: false``). It refuses keywords outside the subset it
understands, because a checker that skips what it cannot read approves
changes it never looked at.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

MODES = ("NONE", "BACKWARD", "FORWARD", "FULL",
         "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE")
ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples"}
UNDERSTOOD = ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "enum",
                            "items", "format", "default", "minimum", "maximum",
                            "minLength", "maxLength"}
ALL_TYPES = frozenset({"array", "boolean", "null", "number", "object", "string"})
RAISING_NARROWS = {"minimum": True, "minLength": True, "maximum": False, "maxLength": False}


class SchemaRejected(ValueError):
    """The registry refused a schema and stored nothing."""


class InvalidSchema(SchemaRejected):
    """Not a JSON Schema, or a keyword that the checker cannot judge."""


class IncompatibleSchema(SchemaRejected):
    """The schema breaks the subject's compatibility mode; ``changes`` says how."""

    def __init__(self, message: str, changes: list[Change]) -> None:
        super().__init__(message)
        self.changes = changes


class UnknownSubject(LookupError):
    """No schema is registered under this subject, or not at this version."""


# --8<-- [start:change]
@dataclass(frozen=True)
class Change:
    """One difference between two versions of a schema, and whom it breaks.

    ``backward`` says why new readers fail on old events, ``forward`` why old
    readers fail on new events; ``None`` means they do not.
    """

    path: str
    what: str
    backward: str | None = None
    forward: str | None = None

    def breaks(self, mode: str) -> list[str]:
        """The reasons why this change breaks ``mode`` (empty: it does not)."""
        directions = {"NONE": (), "BACKWARD": ("backward",), "FORWARD": ("forward",),
                      "FULL": ("backward", "forward")}[_known(mode).removesuffix("_TRANSITIVE")]
        return [f"{d.upper()}: {getattr(self, d)}" for d in directions if getattr(self, d)]
# --8<-- [end:change]


def _known(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def _types(schema: dict[str, Any]) -> frozenset[str]:
    declared = schema.get("type", ALL_TYPES)
    return frozenset([declared] if isinstance(declared, str) else declared)


def _lost(have: frozenset[str], keep: frozenset[str]) -> list[str]:
    """Kinds of value that ``have`` accepts and ``keep`` rejects, in words."""
    if "number" in have and "integer" in keep and "number" not in keep:
        have = have - {"number"} | {"non-integer number"}
    kept = lambda t: t in keep or (t == "integer" and "number" in keep)
    return sorted(t for t in have if not kept(t))


def _show(values: Any) -> str:
    return ", ".join(json.dumps(v) for v in values)


def check_supported(schema: Any, path: str = "(event)") -> None:
    """Raise :class:`InvalidSchema` at the first keyword that the checker cannot judge."""
    if not isinstance(schema, dict):
        raise InvalidSchema(f"{path}: a schema must be an object, got {schema!r}")
    for keyword in schema:
        if keyword not in UNDERSTOOD and not keyword.startswith("x-"):
            raise InvalidSchema(f"{path}: keyword {keyword!r} is not understood by this checker, "
                                "which therefore cannot judge a change to it")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise InvalidSchema(f"{path}: additionalProperties must be true or false")
    for name, sub in schema.get("properties", {}).items():
        check_supported(sub, name if path == "(event)" else f"{path}.{name}")
    if "items" in schema:
        check_supported(schema["items"], f"{path}[]")


# --8<-- [start:diff]
def diff(old: dict[str, Any], new: dict[str, Any], path: str = "(event)") -> list[Change]:
    """Every change from ``old`` to ``new`` that can matter to a reader."""
    changes = []
    lost, gained = _lost(_types(old), _types(new)), _lost(_types(new), _types(old))
    if lost or gained:
        verb = "changed" if lost and gained else "narrowed" if lost else "widened"
        words = [" or ".join(sorted(_types(s))) for s in (old, new)]
        changes.append(Change(
            path, f"type {verb} from {words[0]} to {words[1]}",
            backward=f"new readers reject old events holding {', '.join(lost)}" if lost else None,
            forward=f"old readers reject new events holding {', '.join(gained)}" if gained
            else None))
    changes += _diff_values(old, new, path)
    if "object" in _types(old) & _types(new):
        changes += _diff_fields(old, new, path)
    if "items" in old or "items" in new:
        changes += diff(old.get("items", {}), new.get("items", {}), f"{path}[]")
    return changes
# --8<-- [end:diff]


def _diff_values(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Change]:
    """Changes to the values a field allows: its enum, format and bounds."""
    changes = []
    was, now = old.get("enum"), new.get("enum")
    if was != now:
        removed = [v for v in was or [] if now is not None and v not in now]
        added = [v for v in now or [] if was is not None and v not in was]
        what = ("enum added" if was is None else "enum dropped" if now is None else "enum "
                + " and ".join([f"narrowed ({_show(removed)} removed)"] * bool(removed)
                               + [f"widened ({_show(added)} added)"] * bool(added)))
        changes.append(Change(
            path, what,
            backward=(f"new readers reject old events holding {_show(removed)}" if removed else
                      f"new readers accept only {_show(now)}" if was is None else None),
            forward=(f"old readers reject new events holding {_show(added)}" if added else
                     f"old readers accept only {_show(was)}" if now is None else None)))
    was, now = old.get("format"), new.get("format")
    if was != now:
        changes.append(Change(
            path, f"format changed from {was or 'none'} to {now or 'none'}",
            backward=f"new readers reject old values that are not {now}" if now else None,
            forward=f"old readers reject new values that are not {was}" if was else None))
    for keyword, raising_narrows in RAISING_NARROWS.items():
        was, now = old.get(keyword), new.get(keyword)
        if was != now:
            narrower = now is not None and (was is None or (now > was) == raising_narrows)
            changes.append(Change(
                path, f"{keyword} {'tightened' if narrower else 'relaxed'}: "
                f"{'none' if was is None else was} -> {'none' if now is None else now}",
                backward=f"new readers reject old values outside {keyword} {now}"
                if narrower else None,
                forward=None if narrower else f"old readers reject new values outside "
                f"{keyword} {was}"))
    return changes


def _fields(schema: dict[str, Any]) -> dict[str, Any]:
    return {**{n: {} for n in schema.get("required", [])}, **schema.get("properties", {})}


def _needs(schema: dict[str, Any], name: str) -> bool:
    """Does a reader of ``schema`` need ``name`` in every event (required, no default)?"""
    return name in schema.get("required", []) and "default" not in _fields(schema)[name]


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ANNOTATIONS | {"default"}}


# --8<-- [start:fields]
def _diff_fields(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Change]:
    """Fields added, removed, renamed, made required or optional; then each kept field."""
    at = lambda name: name if path == "(event)" else f"{path}.{name}"
    old_closed, new_closed = (s.get("additionalProperties") is False for s in (old, new))
    changes = []
    if old_closed != new_closed:
        changes.append(Change(
            path, f"content model {'closed' if new_closed else 'opened'}",
            backward="new readers reject old events with undeclared fields" if new_closed else None,
            forward=None if new_closed else "old readers reject new events with undeclared fields"))
    was, now = _fields(old), _fields(new)
    removed, added = [n for n in was if n not in now], [n for n in now if n not in was]
    renamed = {}
    for gone in removed:  # the same content under another name reads as a rename
        twin = next((n for n in added if n not in renamed.values()
                     and _content(now[n]) == _content(was[gone])), None)
        if twin:
            renamed[gone] = twin
    for name in removed + [n for n in added if n not in renamed.values()]:
        gone, came = (name, renamed.get(name)) if name in was else (None, name)
        back = [f"new readers require {came!r}, which old events lack"] * bool(
            came and _needs(new, came))
        back += [f"new readers are closed and reject old events carrying {gone!r}"] * bool(
            gone and new_closed)
        fwd = [f"old readers require {gone!r}, which new events lack"] * bool(
            gone and _needs(old, gone))
        fwd += [f"old readers are closed and reject new events carrying {came!r}"] * bool(
            came and old_closed)
        kind = ("required, no default" if came and _needs(new, came) else "required, with a "
                "default" if came in new.get("required", []) else "optional")
        what = (f"field {gone!r} renamed to {came!r} (to a reader: one removed, one added)"
                if gone and came else f"field {gone!r} removed" if gone
                else f"field {came!r} added ({kind})")
        changes.append(Change(at(name), what, "; ".join(back) or None, "; ".join(fwd) or None))
    for name in (n for n in was if n in now):
        if _needs(new, name) and name not in old.get("required", []):
            changes.append(Change(at(name), f"field {name!r} made required",
                                  backward=f"new readers require {name!r}; old events may lack it"))
        if _needs(old, name) and name not in new.get("required", []):
            changes.append(Change(at(name), f"field {name!r} made optional",
                                  forward=f"old readers require {name!r}; new events may lack it"))
        changes += diff(was[name], now[name], at(name))
    return changes
# --8<-- [end:fields]


def breaking(old: dict[str, Any], new: dict[str, Any], mode: str) -> list[Change]:
    """The changes from ``old`` to ``new`` that break ``mode``."""
    _known(mode)
    return [change for change in diff(old, new) if change.breaks(mode)]


# --8<-- [start:registry]
class SchemaRegistry:
    """Versions of a JSON Schema per subject (an event type), checked when registered.

    Args:
        path: a SQLite file, shared by every process that opens it, or
            ``":memory:"`` for a registry that lives as long as this object.
        default_mode: the mode of every subject that has none of its own.
    """

    def __init__(self, path: str | Path = ":memory:", *, default_mode: str = "BACKWARD") -> None:
        self.default_mode = _known(default_mode)
        self._lock = threading.Lock()  # one connection runs one transaction at a time
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS schemas (subject TEXT, version INTEGER, body TEXT,"
            " PRIMARY KEY (subject, version));"
            "CREATE TABLE IF NOT EXISTS modes (subject TEXT PRIMARY KEY, mode TEXT);")

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Store ``schema`` as the subject's next version and return the version.

        A schema identical to a registered version returns that version.

        Raises:
            InvalidSchema: not JSON Schema, or a keyword the checker cannot judge.
            IncompatibleSchema: it breaks the subject's mode; nothing is stored.
        """
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidSchema(f"subject must be a non-empty string, got {subject!r}")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = "/".join(str(p) for p in error.path) or "(root)"
            raise InvalidSchema(f"{subject}: not a JSON Schema at {where}: "
                                f"{error.message}") from None
        check_supported(schema)
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        with self._transaction():  # BEGIN IMMEDIATE: one writer at a time, across processes
            texts = self._texts(subject)
            if text in texts:
                return texts.index(text) + 1
            mode = self.mode(subject)
            first = 1 if mode.endswith("_TRANSITIVE") else max(len(texts), 1)
            for version in range(first, len(texts) + 1):
                if changes := breaking(json.loads(texts[version - 1]), schema, mode):
                    raise IncompatibleSchema(
                        f"{subject}: the new schema breaks {mode} against version {version}:\n"
                        + "\n".join(f"  - {c.path}: {c.what}; {'; '.join(c.breaks(mode))}"
                                    for c in changes), changes)
            self._db.execute("INSERT INTO schemas VALUES (?, ?, ?)",
                             (subject, len(texts) + 1, text))
            return len(texts) + 1
    # --8<-- [end:registry]

    def set_mode(self, subject: str, mode: str) -> None:
        """Set one subject's compatibility mode (the others keep the default)."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO modes VALUES (?, ?)", (subject, _known(mode)))

    def mode(self, subject: str) -> str:
        """The mode that a registration under ``subject`` is checked against."""
        row = self._db.execute("SELECT mode FROM modes WHERE subject = ?", (subject,)).fetchone()
        return row[0] if row else self.default_mode

    def versions(self, subject: str) -> list[int]:
        """The registered versions of ``subject``, oldest first (empty if none)."""
        return list(range(1, len(self._texts(subject)) + 1))

    def schema(self, subject: str, version: int | None = None) -> dict[str, Any]:
        """A registered schema: the latest one when ``version`` is None."""
        texts = self._texts(subject)
        if not texts:
            raise UnknownSubject(f"no schema is registered under {subject!r}")
        index = len(texts) if version is None else version
        if not 1 <= index <= len(texts):
            raise UnknownSubject(f"{subject!r} has versions 1 to {len(texts)}, not {version}")
        return json.loads(texts[index - 1])

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def _texts(self, subject: str) -> list[str]:
        rows = self._db.execute("SELECT body FROM schemas WHERE subject = ? ORDER BY version",
                                (subject,))
        return [body for (body,) in rows]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _edit(schema: dict[str, Any], required: list[str] | None = None,
          **fields: Any) -> dict[str, Any]:
    """A copy of ``schema`` with fields added, replaced, or removed (None)."""
    props = {k: v for k, v in {**schema["properties"], **fields}.items() if v is not None}
    keep = [n for n in schema["required"] if n in props] if required is None else required
    return {**schema, "properties": props, "required": keep}


# --8<-- [start:table]
ENTRY = {
    "type": "object",
    "properties": {
        "entry_id": {"type": "string"},
        "text": {"type": "string", "maxLength": 10000},
        "mood": {"type": "string", "enum": ["great", "good", "ok", "low", "awful"]},
        "word_count": {"type": "integer"},
        "sleep_hours": {"type": "number"},
    },
    "required": ["entry_id", "text", "mood"],
}
MOOD = ENTRY["properties"]["mood"]
TEXT = {"type": "string"}
CLOSED = {**ENTRY, "additionalProperties": False}
WITH_LANGUAGE = ["entry_id", "text", "mood", "language"]
CHANGES = [  # (change, old schema, new schema)
    ("add an optional field", ENTRY, _edit(ENTRY, language=TEXT)),
    ("add a required field", ENTRY, _edit(ENTRY, WITH_LANGUAGE, language=TEXT)),
    ("add a required field with a default", ENTRY,
     _edit(ENTRY, WITH_LANGUAGE, language={**TEXT, "default": "und"})),
    ("add an optional field to a closed schema", CLOSED, _edit(CLOSED, language=TEXT)),
    ("remove an optional field", ENTRY, _edit(ENTRY, word_count=None)),
    ("remove a required field", ENTRY, _edit(ENTRY, mood=None)),
    ("rename a field (mood -> feeling)", ENTRY,
     _edit(ENTRY, ["entry_id", "text", "feeling"], mood=None, feeling=MOOD)),
    ("make an optional field required", ENTRY,
     _edit(ENTRY, ["entry_id", "text", "mood", "word_count"])),
    ("make a required field optional", ENTRY, _edit(ENTRY, ["entry_id", "text"])),
    ("widen a type (integer -> number)", ENTRY, _edit(ENTRY, word_count={"type": "number"})),
    ("narrow a type (number -> integer)", ENTRY, _edit(ENTRY, sleep_hours={"type": "integer"})),
    ("change a type (integer -> string)", ENTRY, _edit(ENTRY, word_count=TEXT)),
    ("add an enum value", ENTRY, _edit(ENTRY, mood={**MOOD, "enum": [*MOOD["enum"], "anxious"]})),
    ("remove an enum value", ENTRY, _edit(ENTRY, mood={**MOOD, "enum": MOOD["enum"][:-1]})),
    ("tighten a bound (maxLength 10000 -> 500)", ENTRY,
     _edit(ENTRY, text={**TEXT, "maxLength": 500})),
    ("close the content model", ENTRY, CLOSED),
]
# --8<-- [end:table]


def compatibility_table() -> list[tuple[str, dict[str, bool], list[Change]]]:
    """Each change in :data:`CHANGES`: which modes it keeps, and what breaks the others."""
    return [(name, {m: not breaking(old, new, m) for m in ("BACKWARD", "FORWARD", "FULL")},
             breaking(old, new, "FULL")) for name, old, new in CHANGES]


def main() -> None:
    """Print the compatibility table, then let a SQLite registry refuse a breaking version."""
    rows = compatibility_table()
    print(f"{'schema change':42} BACKWARD FORWARD  FULL")
    for name, kept, _ in rows:
        print(f"{name:42} " + " ".join(f"{'ok' if kept[m] else 'BREAKS':8}"
                                       for m in ("BACKWARD", "FORWARD", "FULL")).rstrip())
    for name, _, changes in (row for row in rows if row[2]):
        print(f"\n{name}:")
        for change in changes:
            print(f"  {change.path}: {change.what}")
            print("".join(f"    {reason}\n" for reason in change.breaks("FULL")), end="")
    with tempfile.TemporaryDirectory() as folder:
        registry = SchemaRegistry(Path(folder) / "registry.db", default_mode="FULL")
        subject = "coaching.entry.written"
        first, second = registry.register(subject, ENTRY), registry.register(subject, CHANGES[0][2])
        print(f"\nregistry in mode {registry.mode(subject)}: version {first}, then version "
              f"{second} with an optional field added")
        try:
            registry.register(subject, CHANGES[5][2])
        except IncompatibleSchema as refusal:
            print(f"refused: {refusal}")
        registry.close()
        reopened = SchemaRegistry(Path(folder) / "registry.db")
        print(f"the file, reopened, holds versions {reopened.versions(subject)}")
        reopened.close()


if __name__ == "__main__":
    main()
