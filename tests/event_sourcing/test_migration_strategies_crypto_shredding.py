"""Crypto-shredding with real AES-GCM: forgetting one person leaves everyone else and the
replay intact; tampering is detected, not mistaken for forgetting. What deleting a key
erases is checked in the raw bytes of every file next to the key store (database,
journal, WAL, backup), including after a SIGKILL in the middle of ``forget``."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

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
    ForgottenError,
    KeyStore,
    PersonalData,
    TamperedError,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
RAM = "/dev/shm" if Path("/dev/shm").is_dir() else None


@pytest.fixture
def personal(tmp_path):
    return PersonalData(KeyStore(tmp_path / "keys.db"))


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_any_text_round_trips_and_never_appears_in_the_sealed_field(text):
    with tempfile.TemporaryDirectory(dir=RAM) as tmp:
        personal = PersonalData(KeyStore(Path(tmp) / "keys.db"))
        sealed = personal.seal("ana", "text", text)
        assert personal.open("text", sealed) == text
        if len(text.encode()) >= 8:  # shorter texts could match random bytes by chance
            assert text.encode() not in base64.b64decode(sealed["blob"])
        personal.keys.conn.close()


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


@pytest.mark.parametrize("bad", [
    "plain text", {"scheme": "rot13"}, None, {"scheme": "aes-256-gcm/v1"},
    {"scheme": "aes-256-gcm/v1", "subject": "ana"},
    {"scheme": "aes-256-gcm/v1", "subject": 7, "blob": "AAAA"},
    {"scheme": "aes-256-gcm/v1", "subject": "ana", "blob": "AAAA!"},  # not strict base64
])
def test_a_field_that_was_never_sealed_is_refused_by_name(personal, bad):
    with pytest.raises(ValueError, match="^text: not a sealed field of scheme 'aes-256-gcm/v1'$"):
        personal.open("text", bad)


def test_keys_are_per_subject_and_stable(personal):
    assert personal.keys.key_for("ana") == personal.keys.key_for("ana")
    assert personal.keys.key_for("ana") != personal.keys.key_for("ben")
    assert len(personal.keys.key_for("ana")) == 32


def test_main_erases_ana_keeps_ben_and_catches_the_tampering(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "plain text in the store? False"
    assert lines[1:5] == ["before (16 words in total)",
                          "  e1 ana: Ran along the canal, felt strong.",
                          "  e2 ben: Skipped the gym, slept instead.",
                          "  e3 ana: Knee hurts; will rest tomorrow."]
    assert lines[5:11] == ["forget ana     : key deleted = True",
                           "files holding ana's key: ['backup.db']",
                           "after (16 words in total)",
                           "  e1 ana: [erased]", "  e2 ben: Skipped the gym, slept instead.",
                           "  e3 ana: [erased]"]
    assert lines[11:13] == [
        ("sealing again  : 'ana' was forgotten: no new key is made for them; give a "
         "returning person a new pseudonymous id"),
        "backup restored: e1 reads 'Ran along the canal, felt strong.'"]
    assert lines[13:] == [("tampered       : text of 'ana-impostor' does not authenticate: "
                           "changed, or copied from another field or subject")]


# --- what deleting a key guarantees, checked in the raw bytes of every file ----------------

def files_holding(folder: Path, needle: bytes) -> list[str]:
    """The files in ``folder`` whose raw bytes contain ``needle``."""
    return sorted(path.name for path in folder.iterdir()
                  if path.is_file() and needle in path.read_bytes())


def three_keys(folder: Path) -> tuple[KeyStore, dict[str, bytes]]:
    keys = KeyStore(folder / "keys.db")
    return keys, {subject: keys.key_for(subject) for subject in ("ana", "ben", "cat")}


def test_after_forget_the_key_is_in_no_file_of_the_key_store_and_the_others_are(tmp_path):
    keys, key = three_keys(tmp_path)
    assert files_holding(tmp_path, key["ana"]) == ["keys.db"]
    assert keys.forget("ana") is True
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keys.db"]  # no journal left
    assert files_holding(tmp_path, key["ana"]) == []  # while the store is still open
    assert files_holding(tmp_path, key["ben"]) == ["keys.db"]
    assert files_holding(tmp_path, key["cat"]) == ["keys.db"]
    keys.conn.close()
    assert files_holding(tmp_path, key["ana"]) == []
    reopened = KeyStore(tmp_path / "keys.db")
    assert (reopened.find("ana"), reopened.find("ben")) == (None, key["ben"])


def test_a_key_store_file_left_in_wal_mode_is_switched_to_a_rollback_journal(tmp_path):
    setup = sqlite3.connect(tmp_path / "keys.db")
    assert setup.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    setup.close()
    keys, key = three_keys(tmp_path)
    assert keys.conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert keys.conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    keys.forget("ana")
    assert files_holding(tmp_path, key["ana"]) == []
    assert not (tmp_path / "keys.db-wal").exists()


def test_a_key_store_that_cannot_leave_wal_mode_is_refused_and_loses_nothing(tmp_path):
    keys, key = three_keys(tmp_path)
    keys.conn.close()
    other = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("SELECT count(*) FROM subject_keys").fetchone()  # another reader stays open
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'keys.db'))}: cannot "
                                         r"use a rollback journal \(journal_mode=delete\): "
                                         r"database is locked; a WAL file keeps old copies "
                                         r"of deleted keys, so close the other connections "
                                         r"first$"):
        KeyStore(tmp_path / "keys.db")
    assert other.execute("SELECT subject, key FROM subject_keys ORDER BY subject").fetchall() \
        == sorted(key.items())


def test_keys_are_refused_a_place_in_a_database_with_other_tables(tmp_path):
    with SQLiteEventStore(tmp_path / "events.db") as store:
        store.append("journal", [NewEvent("EntryWritten", {"words": 3})], expected_version=0)
    before = (tmp_path / "events.db").read_bytes()
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'events.db'))}: holds "
                                         r"other tables \(.*events.*\); keep keys in a "
                                         r"database of their own, so that copies of the "
                                         r"other data never carry keys$"):
        KeyStore(tmp_path / "events.db")
    assert (tmp_path / "events.db").read_bytes() == before


@pytest.mark.parametrize(("mode", "secure_delete", "then", "holding"), [
    ("delete", "ON", None, []),
    ("truncate", "ON", None, []),
    ("delete", "OFF", None, ["keys.db"]),
    ("delete", "OFF", "VACUUM", []),
    ("persist", "ON", None, ["keys.db-journal"]),
    ("wal", "ON", None, ["keys.db-wal"]),
    ("wal", "ON", "PRAGMA wal_checkpoint(TRUNCATE)", []),
])
def test_where_sqlite_keeps_a_deleted_row(tmp_path, mode, secure_delete, then, holding):
    """The facts the key store is built on, for a plain SQLite connection."""
    db = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
    db.execute(f"PRAGMA secure_delete = {secure_delete}")
    assert db.execute(f"PRAGMA journal_mode = {mode}").fetchone() == (mode,)
    db.execute("CREATE TABLE subject_keys (subject TEXT PRIMARY KEY, key BLOB NOT NULL)")
    key = {subject: os.urandom(32) for subject in ("ana", "ben", "cat")}
    db.executemany("INSERT INTO subject_keys VALUES (?, ?)", key.items())
    db.execute("DELETE FROM subject_keys WHERE subject = 'ana'")
    if then:
        db.execute(then)
    assert files_holding(tmp_path, key["ana"]) == holding


KILL_MID_FORGET = textwrap.dedent("""
    import os, signal, sys
    from snippets.event_sourcing.migration_strategies_crypto_shredding import KeyStore

    class DiesAfterDelete:
        def __init__(self, conn):
            self._conn = conn
        def execute(self, sql, params=()):
            cursor = self._conn.execute(sql, params)
            if sql.startswith("DELETE"):
                os.kill(os.getpid(), signal.SIGKILL)
            return cursor
        def __getattr__(self, name):
            return getattr(self._conn, name)

    keys = KeyStore(sys.argv[1])
    keys.conn = DiesAfterDelete(keys.conn)
    keys.forget("ana")
""")


def test_a_forget_killed_before_its_commit_leaves_the_key_whole_and_a_retry_erases_it(
        tmp_path):
    keys, key = three_keys(tmp_path)
    keys.conn.close()
    victim = subprocess.run([sys.executable, "-c", KILL_MID_FORGET, str(tmp_path / "keys.db")],
                            cwd=ROOT, timeout=60, check=False)
    assert victim.returncode == -signal.SIGKILL
    # the deletion was not committed: the key is in the file, and in the journal's copy
    assert files_holding(tmp_path, key["ana"]) == ["keys.db", "keys.db-journal"]
    keys = KeyStore(tmp_path / "keys.db")  # the hot journal is rolled back
    assert keys.find("ana") == key["ana"]
    assert keys.forget("ana") is True
    assert files_holding(tmp_path, key["ana"]) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keys.db"]


def test_a_backup_taken_before_the_deletion_still_holds_the_key_and_undoes_the_erasure(
        tmp_path):
    keys, key = three_keys(tmp_path)
    personal = PersonalData(keys)
    sealed = personal.seal("ana", "text", "Ran along the canal.")
    shutil.copy(tmp_path / "keys.db", tmp_path / "keys-backup.db")
    keys.forget("ana")
    assert personal.open("text", sealed) == ERASED
    assert files_holding(tmp_path, key["ana"]) == ["keys-backup.db"]
    restored = PersonalData(KeyStore(tmp_path / "keys-backup.db"))
    assert restored.open("text", sealed) == "Ran along the canal."


def test_the_event_database_holds_neither_keys_nor_plain_text(tmp_path):
    keys = KeyStore(tmp_path / "keys.db")
    personal = PersonalData(keys)
    with SQLiteEventStore(tmp_path / "events.db") as store:
        for i, (user, text) in enumerate([("ana", "canal run at dawn"),
                                          ("ben", "slept through the gym")]):
            store.append("journal", [NewEvent("EntryWritten", {
                "user": user, "text": personal.seal(user, "text", text)})],
                expected_version=i)
    for subject in ("ana", "ben"):
        assert files_holding(tmp_path, keys.find(subject)) == ["keys.db"]
    assert files_holding(tmp_path, b"canal run") == []
    assert files_holding(tmp_path, b"through the gym") == []


def test_a_forgotten_subject_gets_no_new_key_and_stays_erased_not_tampered(tmp_path):
    personal = PersonalData(KeyStore(tmp_path / "keys.db"))
    old = personal.seal("ana", "text", "before the request")
    ben = personal.seal("ben", "text", "still here")
    personal.keys.forget("ana")
    with pytest.raises(ForgottenError, match=r"^'ana' was forgotten: no new key is made for "
                                             r"them; give a returning person a new "
                                             r"pseudonymous id$"):
        personal.seal("ana", "text", "a late event")
    with pytest.raises(ForgottenError, match="'ana' was forgotten"):
        personal.keys.key_for("ana")
    assert personal.keys.find("ana") is None
    assert personal.open("text", old) == ERASED
    assert personal.open("text", ben) == "still here"
    assert personal.keys.forget("ana") is False  # already gone; still forgotten
    assert personal.keys.forget("dan") is False  # never had a key: remembered as forgotten
    with pytest.raises(ForgottenError, match="'dan' was forgotten"):
        personal.keys.key_for("dan")


@pytest.mark.parametrize(("subject", "field", "error", "message"), [
    ("", "text", ValueError, "subject must be a non-empty string without '/', got ''"),
    ("ana/x", "text", ValueError, "subject must be a non-empty string without '/', got 'ana/x'"),
    (7, "text", TypeError, "subject must be a non-empty string without '/', got 7"),
    ("ana", "te/xt", ValueError, "field must be a non-empty string without '/', got 'te/xt'"),
    ("ana", None, TypeError, "field must be a non-empty string without '/', got None"),
])
def test_a_subject_or_field_name_that_could_be_confused_is_refused(tmp_path, subject, field,
                                                                  error, message):
    personal = PersonalData(KeyStore(tmp_path / "keys.db"))
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        personal.seal(subject, field, "private")
    assert personal.keys.conn.execute("SELECT count(*) FROM subject_keys").fetchone() == (0,)


def test_a_value_that_is_not_text_is_refused(tmp_path):
    personal = PersonalData(KeyStore(tmp_path / "keys.db"))
    with pytest.raises(TypeError, match=r"^text: only text is sealed, got bytes$"):
        personal.seal("ana", "text", b"private")


@pytest.mark.parametrize("method", ["key_for", "forget"])
@pytest.mark.parametrize(("subject", "error"), [(7, TypeError), ("", ValueError),
                                                ("ana/x", ValueError)])
def test_the_key_store_refuses_a_subject_it_could_confuse(tmp_path, method, subject, error):
    keys = KeyStore(tmp_path / "keys.db")
    with pytest.raises(error, match=rf"^subject must be a non-empty string without '/', got "
                                    rf"{re.escape(repr(subject))}$"):
        getattr(keys, method)(subject)
    assert keys.conn.execute("SELECT (SELECT count(*) FROM subject_keys), "
                             "(SELECT count(*) FROM forgotten)").fetchone() == (0, 0)
