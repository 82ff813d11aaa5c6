"""Crypto-shredding: forget a person in an append-only store by deleting their key.

Events cannot be edited, yet a person may ask to be forgotten. So personal
fields (the text of a journal entry) are stored encrypted with a key that
belongs to that person alone (AES-256-GCM from ``cryptography``). To forget
them, delete the key: their fields become unreadable noise, while every
other field and everyone else's data stay intact, and the whole stream can
still be replayed.

Deleting a key erases only as much as the key store lets it. This one keeps
its keys in a SQLite file of its own (never in the event database), with
``secure_delete`` on, so SQLite overwrites a deleted key with zeros, and a
rollback journal in ``delete`` mode, so no journal or write-ahead log keeps
an old copy of the page once ``forget`` has committed. What no delete can
reach: copies made before it (backups, replicas, file-system snapshots) and
disk blocks the file system has freed but not yet reused. Backups of the key
store must therefore expire sooner than the deadline for erasure.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ERASED = "[erased]"
SCHEME = "aes-256-gcm/v1"


class TamperedError(Exception):
    """An encrypted field failed authentication: changed or moved, not merely forgotten."""


class ForgottenError(Exception):
    """The subject was forgotten: no new key is made for them."""


def check_name(kind: str, name: object) -> None:
    """Refuse a subject or field name that is not a non-empty string without ``/``.

    The two are joined with ``/`` into the associated data, so a ``/`` inside
    one of them would let ``("a/b", "c")`` pass for ``("a", "b/c")``.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a non-empty string without '/', got {name!r}")
    if not name or "/" in name:
        raise ValueError(f"{kind} must be a non-empty string without '/', got {name!r}")


# --8<-- [start:keys]
class KeyStore:
    """One random 256-bit key per subject, in a SQLite file of its own.

    Args:
        path: the key store's file. It must hold nothing but keys.

    Raises:
        ValueError: the file holds other tables, or cannot use a rollback journal.
    """

    TABLES = ("subject_keys", "forgotten")

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        try:
            others = [name for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN (?, ?) "
                "ORDER BY name", self.TABLES)]
            if others:
                raise ValueError(f"{path}: holds other tables ({', '.join(others)}); keep keys "
                                 "in a database of their own, so that copies of the other "
                                 "data never carry keys")
            try:  # a WAL or a persistent journal would keep old pages: deleted keys
                mode = self.conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            except sqlite3.OperationalError as error:
                mode = str(error)
            if mode != "delete":
                raise ValueError(f"{path}: cannot use a rollback journal (journal_mode=delete): "
                                 f"{mode}; a WAL file keeps old copies of deleted keys, so "
                                 "close the other connections first")
            self.conn.execute("PRAGMA secure_delete = ON")  # zeros over every deleted row
            self.conn.executescript("""
                CREATE TABLE IF NOT EXISTS subject_keys (subject TEXT PRIMARY KEY,
                    key BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS forgotten (subject TEXT PRIMARY KEY);""")
        except BaseException:
            self.conn.close()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def key_for(self, subject: str) -> bytes:
        """The subject's key, created on first use.

        Raises:
            ForgottenError: the subject was forgotten.
        """
        check_name("subject", subject)
        with self._transaction():
            if self.conn.execute("SELECT 1 FROM forgotten WHERE subject = ?",
                                 (subject,)).fetchone():
                raise ForgottenError(f"{subject!r} was forgotten: no new key is made for "
                                     "them; give a returning person a new pseudonymous id")
            self.conn.execute("INSERT OR IGNORE INTO subject_keys VALUES (?, ?)",
                              (subject, AESGCM.generate_key(bit_length=256)))
            key = self.find(subject)
        return key  # type: ignore[return-value]

    def find(self, subject: str) -> bytes | None:
        row = self.conn.execute("SELECT key FROM subject_keys WHERE subject = ?",
                                (subject,)).fetchone()
        return row[0] if row else None

    def forget(self, subject: str) -> bool:
        """Delete the subject's key and remember them as forgotten; True if a key was deleted.

        Once it returns, the key's bytes are in no file of the key store. A
        crash before the commit leaves the key whole: call it again.
        """
        check_name("subject", subject)
        with self._transaction():
            deleted = self.conn.execute("DELETE FROM subject_keys WHERE subject = ?",
                                        (subject,)).rowcount == 1
            self.conn.execute("INSERT OR IGNORE INTO forgotten VALUES (?)", (subject,))
        return deleted
# --8<-- [end:keys]


# --8<-- [start:fields]
class PersonalData:
    """Encrypts personal fields for a subject and decrypts them, or says they are gone."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def seal(self, subject: str, field: str, value: str) -> dict[str, str]:
        """An encrypted field; the subject and field name are bound in as associated data.

        Raises:
            ForgottenError: the subject was forgotten.
            TypeError, ValueError: a name or the value is not usable (nothing is stored).
        """
        check_name("subject", subject)
        check_name("field", field)
        if not isinstance(value, str):
            raise TypeError(f"{field}: only text is sealed, got {type(value).__name__}")
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys.key_for(subject)).encrypt(
            nonce, value.encode("utf-8"), f"{subject}/{field}".encode())
        return {"scheme": SCHEME, "subject": subject,
                "blob": base64.b64encode(nonce + sealed).decode("ascii")}

    def open(self, field: str, sealed: dict[str, str]) -> str:
        """The plain value, or ERASED if the subject's key was deleted.

        Raises:
            TamperedError: the key exists but the field does not authenticate.
            ValueError: the value is not a sealed field of a known scheme.
        """
        try:
            if sealed["scheme"] != SCHEME or not isinstance(sealed["subject"], str):
                raise ValueError
            raw = base64.b64decode(sealed["blob"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ValueError(f"{field}: not a sealed field of scheme {SCHEME!r}") from None
        key = self.keys.find(sealed["subject"])
        if key is None:
            return ERASED
        try:
            plain = AESGCM(key).decrypt(raw[:12], raw[12:],
                                        f"{sealed['subject']}/{field}".encode())
        except InvalidTag:
            raise TamperedError(f"{field} of {sealed['subject']!r} does not authenticate: "
                                "changed, or copied from another field or subject") from None
        return plain.decode("utf-8")
# --8<-- [end:fields]


# --8<-- [start:demo]
def main() -> None:
    """Ana and Ben write entries; Ana asks to be forgotten; the stream still replays."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        personal = PersonalData(KeyStore(folder / "keys.db"))
        stream: list[dict[str, Any]] = []  # the append-only event store, as stored JSON
        for user, entry, text in [("ana", "e1", "Ran along the canal, felt strong."),
                                  ("ben", "e2", "Skipped the gym, slept instead."),
                                  ("ana", "e3", "Knee hurts; will rest tomorrow.")]:
            stream.append({"type": "EntryWritten", "user": user, "entry_id": entry,
                           "words": len(text.split()),
                           "text": personal.seal(user, "text", text)})
        stored = json.dumps(stream)
        print(f"plain text in the store? {'canal' in stored or 'gym' in stored}")

        def replay(label: str) -> None:
            words = sum(event["words"] for event in stream)  # non-personal fields replay
            print(f"{label} ({words} words in total)")
            for event in stream:
                print(f"  {event['entry_id']} {event['user']}: "
                      f"{personal.open('text', event['text'])}")

        replay("before")
        shutil.copy(folder / "keys.db", folder / "backup.db")  # last night's backup
        ana_key = personal.keys.find("ana")
        print(f"forget ana     : key deleted = {personal.keys.forget('ana')}")
        holding = sorted(path.name for path in folder.iterdir()
                         if ana_key in path.read_bytes())
        print(f"files holding ana's key: {holding}")
        replay("after")
        try:
            personal.seal("ana", "text", "a late event")
        except ForgottenError as error:
            print(f"sealing again  : {error}")
        restored = PersonalData(KeyStore(folder / "backup.db"))
        print(f"backup restored: e1 reads {restored.open('text', stream[0]['text'])!r}")
        stream[1]["text"]["subject"] = "ana-impostor"  # tampering is not forgetting
        personal.keys.key_for("ana-impostor")
        try:
            personal.open("text", stream[1]["text"])
        except TamperedError as error:
            print(f"tampered       : {error}")
        personal.keys.conn.close()
        restored.keys.conn.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
