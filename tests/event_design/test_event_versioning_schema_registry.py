"""The compatibility checker names each breaking change and the mode it breaks; the registry
stores nothing it refuses, survives a reopen, and serialises concurrent registrations."""

from __future__ import annotations

import copy
import functools
import json
import threading

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from jsonschema import Draft202012Validator

from snippets.event_design.event_versioning_schema_registry import (
    CHANGES,
    ENTRY,
    IncompatibleSchema,
    InvalidSchema,
    SchemaRegistry,
    UnknownSubject,
    breaking,
    compatibility_table,
    diff,
    main,
)

OK, BREAKS = True, False
# change: (BACKWARD kept, FORWARD kept): the verdicts a practitioner expects, written by hand
EXPECTED = {
    "add an optional field": (OK, OK),
    "add a required field": (BREAKS, OK),
    "add a required field with a default": (OK, OK),
    "add an optional field to a closed schema": (OK, BREAKS),
    "remove an optional field": (OK, OK),
    "remove a required field": (OK, BREAKS),
    "rename a field (mood -> feeling)": (BREAKS, BREAKS),
    "make an optional field required": (BREAKS, OK),
    "make a required field optional": (OK, BREAKS),
    "widen a type (integer -> number)": (OK, BREAKS),
    "narrow a type (number -> integer)": (BREAKS, OK),
    "change a type (integer -> string)": (BREAKS, BREAKS),
    "add an enum value": (OK, BREAKS),
    "remove an enum value": (BREAKS, OK),
    "tighten a bound (maxLength 10000 -> 500)": (BREAKS, OK),
    "close the content model": (BREAKS, OK),
}
# change: (what the message must name, the reason it must give)
MESSAGES = {
    "add a required field": ("field 'language' added (required, no default)",
                             "BACKWARD: new readers require 'language', which old events lack"),
    "add an optional field to a closed schema": (
        "field 'language' added (optional)",
        "FORWARD: old readers are closed and reject new events carrying 'language'"),
    "remove a required field": ("field 'mood' removed",
                                "FORWARD: old readers require 'mood', which new events lack"),
    "rename a field (mood -> feeling)": ("field 'mood' renamed to 'feeling'",
                                         "BACKWARD: new readers require 'feeling'"),
    "make an optional field required": ("field 'word_count' made required",
                                        "BACKWARD: new readers require 'word_count'"),
    "make a required field optional": ("field 'mood' made optional",
                                       "FORWARD: old readers require 'mood'"),
    "widen a type (integer -> number)": (
        "type widened from integer to number",
        "FORWARD: old readers reject new events holding non-integer number"),
    "narrow a type (number -> integer)": (
        "type narrowed from number to integer",
        "BACKWARD: new readers reject old events holding non-integer number"),
    "add an enum value": ('enum widened ("anxious" added)',
                          'FORWARD: old readers reject new events holding "anxious"'),
    "remove an enum value": ('enum narrowed ("awful" removed)',
                             'BACKWARD: new readers reject old events holding "awful"'),
    "tighten a bound (maxLength 10000 -> 500)": ("maxLength tightened: 10000 -> 500",
                                                 "BACKWARD: new readers reject old values"),
    "close the content model": (
        "content model closed", "BACKWARD: new readers reject old events with undeclared fields"),
}
ROWS = {name: (old, new) for name, old, new in CHANGES}


def test_the_table_covers_every_change_the_issue_lists():
    assert set(ROWS) == set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_schema_change_keeps_or_breaks_the_modes_a_practitioner_expects(name):
    old, new = ROWS[name]
    backward, forward = EXPECTED[name]
    assert (not breaking(old, new, "BACKWARD"), not breaking(old, new, "FORWARD")) == (
        backward, forward)
    assert (not breaking(old, new, "FULL")) == (backward and forward)
    assert breaking(old, new, "NONE") == []


@pytest.mark.parametrize("name", MESSAGES)
def test_a_breaking_change_is_named_with_the_mode_it_breaks_and_why(name):
    old, new = ROWS[name]
    what, reason = MESSAGES[name]
    changes = breaking(old, new, "FULL")
    assert any(what in c.what and any(r.startswith(reason) for r in c.breaks("FULL"))
               for c in changes), [(c.what, c.breaks("FULL")) for c in changes]


def test_the_printed_table_is_the_checkers_own_verdicts(capsys):
    main()
    out = capsys.readouterr().out
    for name, kept, _ in compatibility_table():
        cells = ["ok" if kept[m] else "BREAKS" for m in ("BACKWARD", "FORWARD", "FULL")]
        assert any(line.startswith(name) and line.split()[-3:] == cells
                   for line in out.splitlines()), name
    assert "refused: coaching.entry.written: the new schema breaks FULL against version 2" in out
    assert "the file, reopened, holds versions [1, 2]" in out


# -- the verdicts agree with real validation ---------------------------------------------------

def documents(schema: dict, *, extra: bool) -> st.SearchStrategy:
    """Events a writer with ``schema`` may emit, boundary values included. An open writer may
    add a field that no version declares (names are never reused with another meaning)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", ["string", "integer", "number", "boolean", "null"])
    options = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "string":
            longest = schema.get("maxLength", 600)
            options += [st.text(max_size=8), st.just("x" * longest)]
        elif kind == "integer":
            options += [st.integers(-5, 5)]
        elif kind == "number":
            options += [st.integers(-5, 5), st.floats(-5, 5, allow_nan=False).map(lambda f: f + .5)]
        elif kind == "object":
            props = schema.get("properties", {})
            required = schema.get("required", [])
            optional = {n: documents(s, extra=extra) for n, s in props.items() if n not in required}
            if extra and schema.get("additionalProperties") is not False:
                optional["x_undeclared"] = st.integers()
            options += [st.fixed_dictionaries({n: documents(props.get(n, {}), extra=extra)
                                               for n in required}, optional=optional)]
        else:
            options += [st.booleans() if kind == "boolean" else st.none()]
    return st.one_of(options)


@functools.cache
def validator(text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(text))


def reads(reader: dict, event: dict) -> bool:
    """A tolerant reader: fill in declared defaults, then validate."""
    filled = dict(event)
    for name, spec in reader.get("properties", {}).items():
        if name not in filled and "default" in spec:
            filled[name] = spec["default"]
    return validator(json.dumps(reader, sort_keys=True)).is_valid(filled)


SEARCH = settings(max_examples=250, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("mode", ["BACKWARD", "FORWARD"])
def test_a_verdict_agrees_with_validating_real_events(name, mode):
    """BACKWARD: do new readers read old events? FORWARD: old readers new events? The checker
    says ok exactly when a search over the writer's events finds none that the reader refuses."""
    old, new = ROWS[name]
    writer, reader = (old, new) if mode == "BACKWARD" else (new, old)
    try:
        refused = find(documents(writer, extra=True), lambda e: not reads(reader, e),
                       settings=SEARCH)
    except NoSuchExample:
        refused = None
    assert (refused is None) == (not breaking(old, new, mode)), refused


# -- the checker on its own --------------------------------------------------------------------

def test_identical_schemas_and_annotation_edits_change_nothing():
    described = {**ENTRY, "description": "An entry.", "properties": {
        **ENTRY["properties"], "text": {**ENTRY["properties"]["text"], "title": "Body"}}}
    assert diff(ENTRY, copy.deepcopy(ENTRY)) == []
    assert diff(ENTRY, described) == []


def test_nested_fields_and_array_items_are_compared_with_their_paths():
    old = {"type": "object", "properties": {
        "mood": {"type": "object", "properties": {"score": {"type": "integer", "maximum": 5}}},
        "tags": {"type": "array", "items": {"type": "string"}}}}
    new = copy.deepcopy(old)
    new["properties"]["mood"]["properties"]["score"]["maximum"] = 3
    new["properties"]["tags"]["items"] = {"type": "integer"}
    found = {c.path: c for c in breaking(old, new, "BACKWARD")}
    assert set(found) == {"mood.score", "tags[]"}
    assert "maximum tightened: 5 -> 3" in found["mood.score"].what


@pytest.mark.parametrize(("old", "new", "what", "mode"), [
    ({"type": "string"}, {"type": "string", "format": "date"}, "format changed from none to date",
     "BACKWARD"),
    ({"type": "string", "format": "date"}, {"type": "string"}, "format changed from date to none",
     "FORWARD"),
    ({"type": "string"}, {"type": "string", "enum": ["a"]}, "enum added", "BACKWARD"),
    ({"type": "string", "enum": ["a"]}, {"type": "string"}, "enum dropped", "FORWARD"),
    ({"type": "integer", "minimum": 1}, {"type": "integer"}, "minimum relaxed: 1 -> none",
     "FORWARD"),
    ({"type": "string"}, {"type": "string", "minLength": 2}, "minLength tightened: none -> 2",
     "BACKWARD"),
    ({"type": "object", "additionalProperties": False}, {"type": "object"}, "content model opened",
     "FORWARD"),
    ({"type": "string"}, {"type": ["string", "null"]}, "type widened from string to null or string",
     "FORWARD"),
])
def test_value_constraints_break_the_direction_they_narrow(old, new, what, mode):
    changes = diff(old, new)
    assert [c.what for c in changes] == [what]
    assert changes[0].breaks(mode) and not changes[0].breaks(
        "FORWARD" if mode == "BACKWARD" else "BACKWARD")


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown compatibility mode 'SIDEWAYS'"):
        breaking(ENTRY, ENTRY, "SIDEWAYS")


# -- the registry ------------------------------------------------------------------------------

SUBJECT = "coaching.entry.written"


def test_a_compatible_version_is_stored_and_an_identical_one_returns_its_version():
    registry = SchemaRegistry()
    assert registry.register(SUBJECT, ENTRY) == 1
    assert registry.register(SUBJECT, ROWS["add an optional field"][1]) == 2
    assert registry.register(SUBJECT, copy.deepcopy(ENTRY)) == 1
    assert registry.versions(SUBJECT) == [1, 2]
    assert registry.schema(SUBJECT) == ROWS["add an optional field"][1]
    assert registry.schema(SUBJECT, 1) == ENTRY


def test_an_incompatible_version_is_refused_with_its_changes_and_nothing_is_stored():
    registry = SchemaRegistry(default_mode="BACKWARD")
    registry.register(SUBJECT, ENTRY)
    with pytest.raises(IncompatibleSchema) as refused:
        registry.register(SUBJECT, ROWS["remove an enum value"][1])
    message = str(refused.value)
    assert "breaks BACKWARD against version 1" in message
    assert 'mood: enum narrowed ("awful" removed)' in message
    assert [c.path for c in refused.value.changes] == ["mood"]
    assert registry.versions(SUBJECT) == [1]
    assert registry.schema(SUBJECT) == ENTRY


def test_each_subject_has_its_own_mode():
    registry = SchemaRegistry(default_mode="FULL")
    registry.set_mode("coaching.goal.set", "NONE")
    assert registry.mode(SUBJECT) == "FULL"
    assert registry.mode("coaching.goal.set") == "NONE"
    registry.register("coaching.goal.set", ENTRY)
    assert registry.register("coaching.goal.set", ROWS["rename a field (mood -> feeling)"][1]) == 2
    registry.register(SUBJECT, ENTRY)
    with pytest.raises(IncompatibleSchema, match="breaks FULL"):
        registry.register(SUBJECT, ROWS["add an enum value"][1])
    with pytest.raises(ValueError, match="unknown compatibility mode 'LOOSE'"):
        registry.set_mode(SUBJECT, "LOOSE")
    with pytest.raises(ValueError, match="unknown compatibility mode"):
        SchemaRegistry(default_mode="backward")


def test_a_transitive_mode_checks_every_earlier_version_not_only_the_latest():
    v1 = {"type": "object", "properties": {"goal": {"type": "string"}}}
    v2 = {"type": "object", "properties": {}}
    v3 = {"type": "object", "properties": {"goal": {"type": "integer"}}}
    plain, transitive = SchemaRegistry(), SchemaRegistry(default_mode="BACKWARD_TRANSITIVE")
    for registry in (plain, transitive):
        registry.register(SUBJECT, v1)
        registry.register(SUBJECT, v2)
    assert plain.register(SUBJECT, v3) == 3
    with pytest.raises(IncompatibleSchema, match="against version 1:\n  - goal: type changed "
                                                 "from string to integer"):
        transitive.register(SUBJECT, v3)
    assert transitive.versions(SUBJECT) == [1, 2]


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "strin"}, r"not a JSON Schema at type: 'strin' is not valid"),
    ({"type": "object", "properties": {"mood": {"oneOf": [{"type": "string"}]}}},
     r"mood: keyword 'oneOf' is not understood by this checker"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": {"$ref": "#/x"}}}},
     r"a\[\]: keyword '\$ref' is not understood"),
    ({"type": "string", "pattern": "^[a-z]+$"}, r"\(event\): keyword 'pattern' is not understood"),
    ({"type": "object", "additionalProperties": {"type": "string"}},
     r"additionalProperties must be true or false"),
    (True, r"a schema must be an object, got True"),
])
def test_a_schema_the_checker_cannot_judge_is_refused_by_name_and_nothing_is_stored(schema,
                                                                                     message):
    registry = SchemaRegistry()
    registry.register(SUBJECT, ENTRY)
    with pytest.raises(InvalidSchema, match=message):
        registry.register(SUBJECT, schema)
    assert registry.versions(SUBJECT) == [1]


def test_x_extensions_are_accepted_as_annotations():
    registry = SchemaRegistry()
    marked = {**ENTRY, "properties": {**ENTRY["properties"],
                                      "text": {"type": "string", "x-personal": True}}}
    assert registry.register(SUBJECT, marked) == 1


@pytest.mark.parametrize("subject", ["", "  ", None, 7])
def test_a_subject_must_be_a_non_empty_string(subject):
    with pytest.raises(InvalidSchema, match="subject must be a non-empty string"):
        SchemaRegistry().register(subject, ENTRY)


def test_asking_for_an_unknown_subject_or_version_says_what_exists():
    registry = SchemaRegistry()
    with pytest.raises(UnknownSubject, match="no schema is registered under 'nope'"):
        registry.schema("nope")
    registry.register(SUBJECT, ENTRY)
    with pytest.raises(UnknownSubject, match="has versions 1 to 1, not 4"):
        registry.schema(SUBJECT, 4)
    assert registry.versions("nope") == []


def test_a_sqlite_registry_keeps_versions_and_modes_across_a_reopen(tmp_path):
    path = tmp_path / "registry.db"
    first = SchemaRegistry(path)
    first.set_mode(SUBJECT, "FORWARD")
    first.register(SUBJECT, ENTRY)
    first.register(SUBJECT, ROWS["remove an enum value"][1])
    with pytest.raises(IncompatibleSchema, match="breaks FORWARD"):
        first.register(SUBJECT, ROWS["add an enum value"][1])
    first.close()
    again = SchemaRegistry(path)
    assert again.versions(SUBJECT) == [1, 2]
    assert again.mode(SUBJECT) == "FORWARD"
    assert again.schema(SUBJECT) == ROWS["remove an enum value"][1]
    again.close()


def race(registries: list[SchemaRegistry], schemas: list[dict]) -> list[object]:
    """Register one schema per thread, all released at once; return each outcome."""
    barrier, outcomes = threading.Barrier(len(schemas)), [None] * len(schemas)

    def register(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = registries[index].register(SUBJECT, schemas[index])
        except IncompatibleSchema as refused:
            outcomes[index] = refused

    threads = [threading.Thread(target=register, args=(i,)) for i in range(len(schemas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("shared", [True, False], ids=["one connection", "two connections"])
def test_concurrent_registrations_are_each_checked_against_the_version_the_other_stored(
        tmp_path, shared):
    """Each candidate is compatible with v1 but not with the other: exactly one may win."""
    as_text = ROWS["add an optional field"][1]
    as_number = {**as_text, "properties": {**as_text["properties"], "language": {"type": "integer"}}}
    for attempt in range(10):
        path = tmp_path / f"race-{attempt}.db"
        setup = SchemaRegistry(path, default_mode="FULL")
        setup.register(SUBJECT, ENTRY)
        registries = [setup, setup] if shared else [setup, SchemaRegistry(path, default_mode="FULL")]
        outcomes = race(registries, [as_text, as_number])
        assert sorted(map(type, outcomes), key=str) == sorted([int, IncompatibleSchema], key=str)
        assert 2 in outcomes
        assert setup.versions(SUBJECT) == [1, 2]
        for registry in {id(r): r for r in registries}.values():
            registry.close()
