"""Upcasting any valid v1 or v2 yields a valid v3 that keeps everything the old event said;
unknown types and versions are refused by name."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from snippets.event_design.event_catalogue_case_study import ENTRY_WRITTEN
from snippets.event_design.event_versioning_schema_registry import breaking
from snippets.event_design.event_versioning_upcasters import (
    LATEST,
    MOOD_SCORES,
    SCHEMAS,
    UPCASTERS,
    MalformedEvent,
    StoredEvent,
    UnknownEvent,
    entry_v1_to_v2,
    entry_v2_to_v3,
    main,
    upcast,
)

TYPE = "coaching.entry.written"
MOODS = st.sampled_from(list(MOOD_SCORES))
V1 = st.fixed_dictionaries({"entry_id": st.text(), "user_id": st.text(), "text": st.text(),
                            "mood": MOODS})
V2 = st.fixed_dictionaries({
    "entry_id": st.text(), "user_id": st.text(), "text": st.text(),
    "mood": MOODS.map(lambda m: {"label": m, "score": MOOD_SCORES[m]}),
    "tags": st.lists(st.text(), max_size=4)})


def valid(version: int, data: dict) -> bool:
    return Draft202012Validator(SCHEMAS[version]).is_valid(data)


def as_v1(v3: dict) -> dict:
    """What a v1 event holds, read back from a v3 one."""
    return {"entry_id": v3["entry_id"], "user_id": v3["author_id"], "text": v3["text"],
            "mood": v3["mood"]["label"]}


def as_v2(v3: dict) -> dict:
    return {**as_v1(v3), "mood": v3["mood"], "tags": v3["tags"]}


@settings(max_examples=300, deadline=None)
@given(V1)
def test_any_valid_v1_upcasts_to_a_valid_v3_that_loses_nothing(data):
    assert valid(1, data)
    before = copy.deepcopy(data)
    current = upcast(StoredEvent(TYPE, 1, data))
    assert current.version == 3 and valid(3, current.data)
    assert as_v1(current.data) == data
    assert current.data["word_count"] == len(data["text"].split())
    assert data == before, "an upcaster must not change its input"


@settings(max_examples=200, deadline=None)
@given(V2)
def test_any_valid_v2_upcasts_to_a_valid_v3_that_loses_nothing(data):
    current = upcast(StoredEvent(TYPE, 2, data))
    assert valid(3, current.data) and as_v2(current.data) == data


@settings(max_examples=100, deadline=None)
@given(V1)
def test_each_step_yields_the_next_valid_version_and_is_pure(data):
    v2 = entry_v1_to_v2(data)
    assert valid(2, v2) and entry_v1_to_v2(data) == v2
    assert valid(3, entry_v2_to_v3(v2))


def test_a_current_event_passes_unchanged():
    data = {"entry_id": "e", "author_id": "ana", "text": "a b", "tags": [], "word_count": 2,
            "mood": {"label": "ok", "score": 3}, "language": "en"}
    assert upcast(StoredEvent(TYPE, 3, data)) == StoredEvent(TYPE, 3, data)
    assert upcast(StoredEvent("coaching.goal.set", 1, {"goal_id": "g"})).version == 1


@pytest.mark.parametrize(("event", "message"), [
    (StoredEvent("coaching.entry.deleted", 1, {}), "unknown event type 'coaching.entry.deleted'"),
    (StoredEvent(TYPE, 4, {}), ("coaching.entry.written v4 is unknown here \\(this reader knows "
                                "v1 to v3\\); upgrade the reader before the producer")),
    (StoredEvent(TYPE, 0, {}), "v0 is unknown here"),
    (StoredEvent(TYPE, "2", {}), "v2 is unknown here"),  # type: ignore[arg-type]
])
def test_an_unknown_type_or_version_is_refused_by_name(event, message):
    with pytest.raises(UnknownEvent, match=message):
        upcast(event)


def test_a_gap_in_the_chain_is_an_error_not_a_skipped_step(monkeypatch):
    monkeypatch.delitem(UPCASTERS, (TYPE, 2))
    with pytest.raises(UnknownEvent, match="no upcaster from coaching.entry.written v2 to v3"):
        upcast(StoredEvent(TYPE, 1, {"entry_id": "e", "user_id": "a", "text": "", "mood": "ok"}))


def test_a_v1_mood_outside_the_vocabulary_is_refused_by_name():
    with pytest.raises(ValueError, match="v1 mood 'meh' is not one of awful, low"):
        upcast(StoredEvent(TYPE, 1, {"entry_id": "e", "user_id": "a", "text": "", "mood": "meh"}))


def test_the_v2_change_breaks_readers_which_is_why_it_needs_an_upcaster():
    assert sorted(c.path for c in breaking(SCHEMAS[1], SCHEMAS[2], "BACKWARD")) == ["mood", "tags"]
    assert "user_id" in {c.path for c in breaking(SCHEMAS[2], SCHEMAS[3], "BACKWARD")}


def test_the_catalogue_holds_the_same_schemas_as_the_upcasters():
    assert ENTRY_WRITTEN.schemas == SCHEMAS
    assert LATEST[TYPE] == ENTRY_WRITTEN.latest


def test_the_demo_upcasts_three_versions_and_refuses_two_events(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "stored v1 -> v3", "stored v2 -> v3", "stored v3 -> v3", "stored v4 -> refused",
        "stored v1 -> refused"]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_changing_what_a_reader_got_never_changes_the_stored_event(version):
    v3 = {"entry_id": "e", "author_id": "ana", "text": "a b", "tags": ["run"], "word_count": 2,
          "mood": {"label": "ok", "score": 3}, "language": "en"}
    data = {1: as_v1(v3), 2: as_v2(v3), 3: v3}[version]
    stored = StoredEvent(TYPE, version, copy.deepcopy(data))
    current = upcast(stored)
    current.data["tags"].append("edited")
    current.data["mood"]["score"] = 1
    current.data["text"] = "edited"
    assert stored.data == data
    assert upcast(stored) == upcast(StoredEvent(TYPE, version, copy.deepcopy(data)))


def test_a_boolean_version_is_refused_not_read_as_v1():
    v1 = {"entry_id": "e", "user_id": "a", "text": "", "mood": "ok"}
    with pytest.raises(UnknownEvent, match=r"^coaching\.entry\.written vTrue is unknown here "
                                           r"\(this reader knows v1 to v3\)"):
        upcast(StoredEvent(TYPE, True, v1))  # type: ignore[arg-type]


@pytest.mark.parametrize(("version", "data", "message"), [
    (1, {"entry_id": "e", "text": "", "mood": "ok"},
     r"^coaching\.entry\.written v1 cannot be upcast \(v2 to v3\): missing field 'user_id'$"),
    (1, {"entry_id": "e", "user_id": "a", "text": ""},
     r"^coaching\.entry\.written v1 cannot be upcast \(v1 to v2\): missing field 'mood'$"),
    (2, {"entry_id": "e", "user_id": "a", "mood": {"label": "ok", "score": 3}, "tags": []},
     r"^coaching\.entry\.written v2 cannot be upcast \(v2 to v3\): missing field 'text'$"),
    (2, {"entry_id": "e", "text": "", "mood": {"label": "ok", "score": 3}, "tags": []},
     r"^coaching\.entry\.written v2 cannot be upcast \(v2 to v3\): missing field 'user_id'$"),
    (1, {"entry_id": "e", "user_id": "a", "text": "", "mood": ["ok"]},
     (r"^coaching\.entry\.written v1 cannot be upcast \(v1 to v2\): v1 mood \['ok'\] is not "
      r"one of awful, low, ok, good, great$")),
    (2, {"entry_id": "e", "user_id": "a", "text": 7, "mood": {}, "tags": []},
     r"^coaching\.entry\.written v2 cannot be upcast \(v2 to v3\): 'text' is not a string$"),
    (1, ["not", "an", "object"],
     r"^coaching\.entry\.written v1 cannot be upcast: data is a list, not a JSON object$"),
])
def test_a_malformed_old_event_is_refused_naming_its_version_and_the_field(version, data, message):
    stored = StoredEvent(TYPE, version, data)
    before = copy.deepcopy(data)
    with pytest.raises(MalformedEvent, match=message):
        upcast(stored)
    assert stored.data == before
