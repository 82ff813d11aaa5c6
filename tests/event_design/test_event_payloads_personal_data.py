"""Personal fields never leave in clear, read back only with their owner's key, and become
unreadable everywhere once that key is forgotten."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from snippets.event_design.event_payloads_personal_data import (
    ENTRY_SCHEMA,
    KeyStore,
    PersonalDataError,
    guard,
    main,
    personal_fields,
    seal,
    unseal,
)

ENTRY = {"entry_id": "e-9", "author_id": "ana", "text": "Argued with my sister again.",
         "mood": "low", "word_count": 5}


def test_the_schema_marks_which_fields_are_personal():
    assert personal_fields(ENTRY_SCHEMA) == ["text", "mood"]


def test_the_guard_refuses_personal_fields_in_clear_and_names_them():
    with pytest.raises(PersonalDataError, match="personal field\\(s\\) text, mood not sealed"):
        guard(ENTRY, ENTRY_SCHEMA)
    half = {**seal(ENTRY, ENTRY_SCHEMA, KeyStore(), "ana"), "mood": {"sealed": "x", "also": 1}}
    with pytest.raises(PersonalDataError, match="field\\(s\\) mood not sealed"):
        guard(half, ENTRY_SCHEMA)


def test_a_sealed_event_holds_no_personal_text_and_reads_back_with_the_key():
    keys = KeyStore()
    event = guard(seal(ENTRY, ENTRY_SCHEMA, keys, "ana"), ENTRY_SCHEMA)
    wire = json.dumps(event)
    assert "sister" not in wire and '"low"' not in wire
    assert event["entry_id"] == "e-9" and event["word_count"] == 5
    assert unseal(event, ENTRY_SCHEMA, keys, "ana") == ENTRY
    assert ENTRY["text"] == "Argued with my sister again."  # seal copies, never mutates


def test_forgetting_a_key_erases_that_persons_fields_and_no_one_elses():
    keys = KeyStore()
    ana = seal(ENTRY, ENTRY_SCHEMA, keys, "ana")
    ben = seal({**ENTRY, "author_id": "ben", "text": "Slept well."}, ENTRY_SCHEMA, keys, "ben")
    keys.forget("ana")
    keys.forget("nobody")
    assert unseal(ana, ENTRY_SCHEMA, keys, "ana") == {**ENTRY, "text": None, "mood": None}
    assert unseal(ben, ENTRY_SCHEMA, keys, "ben")["text"] == "Slept well."


def test_a_field_sealed_for_someone_else_or_tampered_with_is_refused():
    keys = KeyStore()
    keys.key("ben")
    event = seal(ENTRY, ENTRY_SCHEMA, keys, "ana")
    with pytest.raises(PersonalDataError, match="field 'text' was not sealed with ben's key"):
        unseal(event, ENTRY_SCHEMA, keys, "ben")
    token = event["text"]["sealed"]
    tampered = {**event, "text": {"sealed": token[:-5] + ("A" if token[-5] != "A" else "B")
                                   + token[-4:]}}
    with pytest.raises(PersonalDataError, match="field 'text'"):
        unseal(tampered, ENTRY_SCHEMA, keys, "ana")
    with pytest.raises(PersonalDataError, match="field 'mood'"):
        unseal({**event, "mood": "low"}, ENTRY_SCHEMA, keys, "ana")


def test_each_person_gets_their_own_key():
    keys = KeyStore()
    token = keys.key("ana").encrypt(b"x")
    assert keys.key("ana").decrypt(token) == b"x"
    assert keys.find("ben") is None
    assert isinstance(keys.key("ben"), Fernet)
    assert keys.key("ben").extract_timestamp(keys.key("ben").encrypt(b"y")) > 0


def test_the_demo_guards_seals_reads_and_erases(capsys):
    main()
    out = capsys.readouterr().out
    assert "guard: personal field(s) text, mood not sealed: not publishing" in out
    assert "'text': '<sealed, 120 chars>'" in out
    assert "analytics : {'entry_id': 'e-9', 'author_id': 'ana', 'word_count': 5}" in out
    assert "erased    : {'entry_id': 'e-9', 'author_id': 'ana', 'text': None, 'mood': None" in out
