"""Personal fields never leave in clear, read back only with their owner's key, and become
unreadable everywhere once that key is forgotten."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.fernet import Fernet

from snippets.event_design.event_payloads_personal_data import (
    ENTRY_SCHEMA,
    KeyStore,
    PersonalDataError,
    guard,
    is_sealed,
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


def test_each_person_gets_their_own_key_named_by_an_id_that_says_nothing_about_them():
    keys = KeyStore()
    ana_id, ana = keys.key("ana")
    assert keys.key("ana")[0] == ana_id and len(ana_id) == 16 and "ana" not in ana_id
    token = ana.encrypt(b"x")
    assert keys.key("ana")[1].decrypt(token) == b"x"
    assert keys.find(ana_id, "ana").decrypt(token) == b"x"
    ben_id, ben = keys.key("ben")
    assert ben_id != ana_id and isinstance(ben, Fernet)
    with pytest.raises(KeyError):
        keys.find(ana_id, "ben")  # a key is opened only for its owner
    with pytest.raises(KeyError):
        keys.find("0" * 16, "ana")
    keys.forget("ana")
    assert keys.find(ana_id, "ana") is None
    assert keys.key("ana")[0] != ana_id  # a new key after the erasure


def test_a_sealed_field_is_a_key_id_and_a_fernet_token():
    event = seal(ENTRY, ENTRY_SCHEMA, KeyStore(), "ana")
    assert set(event["text"]) == {"sealed", "key"} and event["text"]["key"] == event["mood"]["key"]
    assert is_sealed(event["text"]) and is_sealed(event["mood"])
    token = event["text"]["sealed"]
    assert not is_sealed({"sealed": token})                       # no key id
    assert not is_sealed({**event["text"], "extra": 1})
    assert not is_sealed({**event["text"], "sealed": token[:-4]})  # not whole blocks
    assert not is_sealed({**event["text"], "sealed": "é"})
    assert not is_sealed({**event["text"], "sealed": "A" * 3})    # not base64
    assert not is_sealed("text")
    raw = base64.urlsafe_b64decode(token)
    assert not is_sealed({**event["text"], "sealed": base64.urlsafe_b64encode(
        b"\x81" + raw[1:]).decode()})                          # not Fernet's version byte
    assert not is_sealed({**event["text"], "sealed": base64.urlsafe_b64encode(
        raw[:57]).decode()})                                     # no ciphertext at all


def test_the_demo_guards_seals_reads_and_erases(capsys):
    main()
    out = capsys.readouterr().out
    assert "guard: personal field(s) text, mood not sealed: not publishing" in out
    assert "'text': '<sealed, 120 chars>'" in out
    assert "analytics : {'entry_id': 'e-9', 'author_id': 'ana', 'word_count': 5}" in out
    assert "erased    : {'entry_id': 'e-9', 'author_id': 'ana', 'text': None, 'mood': None" in out


@pytest.mark.parametrize("disguised", [
    {"sealed": "Argued with my sister again."},                        # clear text in the wrapper
    {"sealed": "QXJndWVkIHdpdGggbXkgc2lzdGVyIGFnYWluLg=="},            # base64 is not encryption
    {"sealed": ["Argued with my sister again."]},
])
def test_the_guard_refuses_clear_text_wrapped_to_look_sealed(disguised):
    event = seal(ENTRY, ENTRY_SCHEMA, KeyStore(), "ana")
    with pytest.raises(PersonalDataError,
                       match="personal field[(]s[)] text not sealed: not publishing"):
        guard({**event, "text": {**event["text"], **disguised}}, ENTRY_SCHEMA)


def test_an_erased_persons_old_events_stay_erased_after_they_come_back():
    keys = KeyStore()
    before = seal(ENTRY, ENTRY_SCHEMA, keys, "ana")
    keys.forget("ana")
    after = seal({**ENTRY, "entry_id": "e-10", "text": "New start."}, ENTRY_SCHEMA, keys, "ana")
    assert unseal(before, ENTRY_SCHEMA, keys, "ana") == {**ENTRY, "text": None, "mood": None}
    assert unseal(after, ENTRY_SCHEMA, keys, "ana")["text"] == "New start."
    keys.forget("ana")
    assert unseal(after, ENTRY_SCHEMA, keys, "ana")["text"] is None
