"""Crypto-shredding with real AES-GCM: forgetting one person leaves everyone else and the
replay intact; tampering is detected, not mistaken for forgetting."""

from __future__ import annotations

import base64
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.event_projection_projector import (
    Projector,
    WritingCalendar,
)
from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore
from snippets.event_sourcing.migration_strategies_crypto_shredding import (
    ERASED,
    KeyStore,
    PersonalData,
    TamperedError,
    main,
)


@pytest.fixture
def personal():
    return PersonalData(KeyStore(sqlite3.connect(":memory:")))


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_any_text_round_trips_and_never_appears_in_the_sealed_field(text):
    personal = PersonalData(KeyStore(sqlite3.connect(":memory:")))
    sealed = personal.seal("ana", "text", text)
    assert personal.open("text", sealed) == text
    if len(text.encode()) >= 8:  # shorter texts could match random bytes by chance
        assert text.encode() not in base64.b64decode(sealed["blob"])


def test_the_same_text_sealed_twice_looks_different(personal):
    first, second = (personal.seal("ana", "text", "same") for _ in range(2))
    assert first["blob"] != second["blob"]  # a fresh nonce each time


def test_forgetting_a_subject_erases_only_their_fields_and_the_store_still_replays(tmp_path,
                                                                                  personal):
    with SQLiteEventStore(tmp_path / "e.db") as store:
        for i, (user, text) in enumerate([("ana", "ran far"), ("ben", "slept"), ("ana", "rested")]):
            store.append("journal", [NewEvent("EntryWritten", {
                "user": user, "day": f"2025-03-0{i + 1}", "words": len(text.split()),
                "text": personal.seal(user, "text", text)})], expected_version=i)
        assert personal.keys.forget("ana") and not personal.keys.forget("ana")
        texts = [(e.data["user"], personal.open("text", e.data["text"])) for e in store.read_all()]
        assert texts == [("ana", ERASED), ("ben", "slept"), ("ana", ERASED)]
        db = sqlite3.connect(":memory:")
        Projector(db, store, [WritingCalendar()]).catch_up()  # replay is unaffected
        assert db.execute("SELECT sum(words), count(*) FROM writing_calendar").fetchone() == (4, 3)


def test_a_forgotten_key_is_overwritten_on_disk_not_just_unlinked(tmp_path):
    path = tmp_path / "keys.db"
    keys = KeyStore(sqlite3.connect(path))
    key = keys.key_for("ana")
    keys.key_for("ben")
    keys.forget("ana")
    keys.conn.close()
    assert key not in path.read_bytes()


@pytest.mark.parametrize("attack", ["other subject", "other field", "flipped bit"])
def test_a_moved_or_altered_field_is_reported_as_tampering(personal, attack):
    sealed = personal.seal("ana", "text", "private")
    personal.keys.key_for("ben")
    field = "text"
    if attack == "other subject":
        sealed = {**sealed, "subject": "ben"}
    elif attack == "other field":
        field = "title"
    else:
        raw = bytearray(base64.b64decode(sealed["blob"]))
        raw[-1] ^= 1
        sealed = {**sealed, "blob": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(TamperedError, match="does not authenticate"):
        personal.open(field, sealed)


@pytest.mark.parametrize("bad", ["plain text", {"scheme": "rot13"}, None])
def test_a_field_that_was_never_sealed_is_refused_by_name(personal, bad):
    with pytest.raises(ValueError, match="text: not a sealed field of scheme 'aes-256-gcm/v1'"):
        personal.open("text", bad)


def test_keys_are_per_subject_and_stable(personal):
    assert personal.keys.key_for("ana") == personal.keys.key_for("ana")
    assert personal.keys.key_for("ana") != personal.keys.key_for("ben")
    assert len(personal.keys.key_for("ana")) == 32


def test_main_erases_ana_keeps_ben_and_catches_the_tampering(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "plain text in the store? False"
    after = lines[lines.index("after (16 words in total)") + 1:][:3]
    assert after == ["  e1 ana: [erased]", "  e2 ben: Skipped the gym, slept instead.",
                     "  e3 ana: [erased]"]
    assert lines[-1].startswith("tampered       : text of 'ana-impostor' does not authenticate")
