"""Crypto-shredding: forget a person in an append-only store by deleting their key.

Events cannot be edited, yet a person may ask to be forgotten. So personal
fields (the text of a journal entry) are stored encrypted with a key that
belongs to that person alone (AES-256-GCM from ``cryptography``). To forget
them, delete the key: their fields become unreadable noise, while every
other field and everyone else's data stay intact, and the whole stream can
still be replayed. The key store is the only place where deletion happens,
so it must be small, backed up on its own schedule, and never copied into
the event store.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ERASED = "[erased]"
SCHEME = "aes-256-gcm/v1"


class TamperedError(Exception):
    """An encrypted field failed authentication: changed or moved, not merely forgotten."""


# --8<-- [start:keys]
class KeyStore:
    """One random 256-bit key per subject, in SQLite, deleted for good on request."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA secure_delete = ON")  # overwrite deleted keys on disk
        conn.execute("CREATE TABLE IF NOT EXISTS subject_keys "
                     "(subject TEXT PRIMARY KEY, key BLOB NOT NULL)")

    def key_for(self, subject: str) -> bytes:
        """The subject's key, created on first use."""
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO subject_keys VALUES (?, ?)",
                              (subject, AESGCM.generate_key(bit_length=256)))
        return self.find(subject)  # type: ignore[return-value]

    def find(self, subject: str) -> bytes | None:
        row = self.conn.execute("SELECT key FROM subject_keys WHERE subject = ?",
                                (subject,)).fetchone()
        return row[0] if row else None

    def forget(self, subject: str) -> bool:
        """Delete the subject's key; True if there was one."""
        with self.conn:
            return self.conn.execute("DELETE FROM subject_keys WHERE subject = ?",
                                     (subject,)).rowcount == 1
# --8<-- [end:keys]


# --8<-- [start:fields]
class PersonalData:
    """Encrypts personal fields for a subject and decrypts them, or says they are gone."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def seal(self, subject: str, field: str, value: str) -> dict[str, str]:
        """An encrypted field; the subject and field name are bound in as associated data."""
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
        if not isinstance(sealed, dict) or sealed.get("scheme") != SCHEME:
            raise ValueError(f"{field}: not a sealed field of scheme {SCHEME!r}")
        key = self.keys.find(sealed["subject"])
        if key is None:
            return ERASED
        raw = base64.b64decode(sealed["blob"])
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
    conn = sqlite3.connect(":memory:")
    personal = PersonalData(KeyStore(conn))
    stream: list[dict[str, Any]] = []  # the append-only event store, as stored JSON
    for user, entry, text in [("ana", "e1", "Ran along the canal, felt strong."),
                              ("ben", "e2", "Skipped the gym, slept instead."),
                              ("ana", "e3", "Knee hurts; will rest tomorrow.")]:
        stream.append({"type": "EntryWritten", "user": user, "entry_id": entry,
                       "words": len(text.split()), "text": personal.seal(user, "text", text)})
    stored = json.dumps(stream)
    print(f"plain text in the store? {'canal' in stored or 'gym' in stored}")

    def replay(label: str) -> None:
        words = sum(event["words"] for event in stream)  # non-personal fields always replay
        print(f"{label} ({words} words in total)")
        for event in stream:
            print(f"  {event['entry_id']} {event['user']}: {personal.open('text', event['text'])}")

    replay("before")
    print(f"forget ana     : key deleted = {personal.keys.forget('ana')}")
    replay("after")
    stream[1]["text"]["subject"] = "ana-impostor"  # tampering is not the same as forgetting
    personal.keys.key_for("ana-impostor")
    try:
        personal.open("text", stream[1]["text"])
    except TamperedError as error:
        print(f"tampered       : {error}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
