"""Tests of the anti-corruption layer: mapping, ignored types, and refusals that name the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_transformation_translator import (
    MAX_TEXT,
    EntryDeleted,
    EntryWritten,
    LegacyDiaryTranslator,
    TranslationError,
    main,
)

LAYER = LegacyDiaryTranslator({4711: "user-ana", 12: "user-ben"})


def saved(**changes):
    event = {"EvtType": "DIARY_ENTRY_SAVED", "EvtId": 1, "uid": 4711, "ts": 1718035200000,
             "txt": "Ran.", "moodCode": 2, "tagList": "run"}
    event.update(changes)
    return event


def test_a_saved_entry_becomes_entry_written_in_the_domains_words():
    assert LAYER.translate(saved(tagList=" Run;SLEEP;;run ; ", moodCode=0)) == EntryWritten(
        "diarypro-1", "user-ana", datetime(2024, 6, 10, 16, 0, tzinfo=UTC), "Ran.", "low",
        ("run", "sleep"))


@pytest.mark.parametrize(("code", "mood"), [(-1, None), (0, "low"), (1, "low"), (2, "ok"),
                                            (3, "good"), (4, "good")])
def test_every_mood_code_maps_to_a_domain_mood_or_to_none(code, mood):
    assert LAYER.translate(saved(moodCode=code)).mood == mood


def test_a_deletion_becomes_entry_deleted_and_uninteresting_types_are_ignored_explicitly():
    assert LAYER.translate({"EvtType": "DIARY_ENTRY_DELETED", "EvtId": 9, "uid": 12}) == (
        EntryDeleted("diarypro-9", "user-ben"))
    for kind in ["USER_LOGIN", "THEME_CHANGED", "SYNC_HEARTBEAT"]:
        assert LAYER.translate({"EvtType": kind}) is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"EvtType": "DIARY_REMINDER_SET"}, "legacy event 1: unknown EvtType 'DIARY_REMINDER_SET'"),
    ({"EvtType": None}, "unknown EvtType None"),
    ({"EvtId": "1"}, "legacy event \\?: field 'EvtId' must be int, not '1'"),
    ({"uid": 999}, "legacy event 1: unknown DiaryPro user 999"),
    ({"uid": True}, "field 'uid' must be int, not True"),
    ({"ts": "2024-06-10"}, "field 'ts' must be int, not '2024-06-10'"),
    ({"ts": 10**20}, "'ts' 100000000000000000000 is not a plausible time"),
    ({"ts": 1.5e12}, "field 'ts' must be int"),
    ({"txt": None}, "field 'txt' must be str, not None"),
    ({"txt": "x" * (MAX_TEXT + 1)}, f"'txt' is {MAX_TEXT + 1} characters"),
    ({"moodCode": 7}, "'moodCode' 7 is not -1..4"),
    ({"moodCode": "3"}, "field 'moodCode' must be int"),
    ({"tagList": ["run"]}, "field 'tagList' must be str"),
])
def test_what_cannot_be_mapped_is_refused_with_the_event_and_field_named(changes, message):
    with pytest.raises(TranslationError, match=message):
        LAYER.translate(saved(**changes))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["EvtType", "EvtId", "uid", "ts", "txt", "moodCode",
                                        "tagList", "other"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
                       | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(), st.none())
                       | st.sampled_from(["DIARY_ENTRY_SAVED", "DIARY_ENTRY_DELETED"])))
def test_any_legacy_payload_is_translated_ignored_or_refused_never_anything_else(legacy):
    try:
        result = LAYER.translate(legacy)
    except TranslationError as error:
        assert str(error).startswith("legacy event ")
    else:
        assert result is None or isinstance(result, (EntryWritten, EntryDeleted))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 4_102_444_800_000), st.text(max_size=50),
       st.lists(st.text(alphabet="abcXYZ ", max_size=6), max_size=6))
def test_valid_entries_always_translate_to_aware_utc_times_and_clean_unique_tags(
        event_id, millis, text, tags):
    event = LAYER.translate(saved(EvtId=event_id, ts=millis, txt=text, tagList=";".join(tags)))
    assert event.entry_id == f"diarypro-{event_id}" and event.text == text
    assert event.written_at.tzinfo is UTC
    assert all(t and t == t.strip().lower() for t in event.tags)
    assert len(set(event.tags)) == len(event.tags)


def test_the_demo_translates_ignores_deletes_and_refuses(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert "entry_id='diarypro-88123'" in out[0] and "tags=('run', 'sleep')" in out[0]
    assert out[1].endswith("ignored: the domain does not care")
    assert out[2].endswith("EntryDeleted(entry_id='diarypro-88125', user_id='user-ana')")
    assert out[3].endswith("refused: legacy event 88126: field 'ts' must be int, not '2024-06-10'")
    assert out[4].endswith("refused: legacy event 88127: unknown EvtType 'DIARY_REMINDER_SET'")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["DIARY_ENTRY_SAVED", "DIARY_ENTRY_DELETED"]),
       st.text(max_size=20), st.sampled_from([4711, 12]))
def test_re_importing_a_legacy_event_gives_the_same_domain_event_so_inboxes_drop_it(
        event_id, kind, text, uid):
    legacy = saved(EvtType=kind, EvtId=event_id, txt=text, uid=uid)
    first = LAYER.translate(legacy)
    again = LegacyDiaryTranslator({4711: "user-ana", 12: "user-ben"}).translate(dict(legacy))
    assert again == first  # another process, another day: the very same event
    assert first.entry_id == f"diarypro-{event_id}"
    inbox = {first.entry_id}
    assert again.entry_id in inbox
