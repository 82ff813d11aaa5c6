"""Personal data in events: keep it out, or seal each personal field with its owner's key.

An event is copied into brokers, logs, backups, replays and other teams'
stores, and you cannot delete every copy. So the schema marks personal
fields (``"x-personal": true``), a guard refuses to publish them in clear,
and ``seal`` encrypts each one with a key that belongs to the person. Forget
the key and every copy of the event becomes unreadable: crypto-shredding.
(Only if no copy of the key survives: key backups must expire.)
A consumer without access to the keys still reads the rest of the event.
Each sealed field names its key by a random id, so a person who was erased
and comes back with a new key still reads as erased in the old events.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

# --8<-- [start:schema]
ENTRY_SCHEMA = {
    "type": "object",
    "properties": {
        "entry_id": {"type": "string"},
        "author_id": {"type": "string"},  # a pseudonymous id, not a name or an email
        "text": {"type": "string", "x-personal": True},
        "mood": {"type": "string", "x-personal": True},
        "word_count": {"type": "integer"},
    },
    "required": ["entry_id", "author_id", "text"],
}
# --8<-- [end:schema]


class PersonalDataError(ValueError):
    """Personal data would leave in clear, or a sealed field cannot be opened."""


class KeyStore:
    """One key per person at a time, each named by a random id.

    Forgetting a person's key erases every field sealed with it, everywhere,
    even after that person comes back and gets a new key.
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, bytes]] = {}  # key id -> (person, key)
        self._current: dict[str, str] = {}             # person -> id of the key in use
        self._forgotten: set[str] = set()              # ids of keys deleted on request

    def key(self, person: str) -> tuple[str, Fernet]:
        """The id and key that seal ``person``'s fields now, created on first use."""
        if person not in self._current:
            key_id = secrets.token_hex(8)
            self._keys[key_id] = (person, Fernet.generate_key())
            self._current[person] = key_id
        key_id = self._current[person]
        return key_id, Fernet(self._keys[key_id][1])

    def find(self, key_id: str, person: str) -> Fernet | None:
        """Key ``key_id`` if it is ``person``'s, or None once it has been forgotten.

        Raises:
            KeyError: no such key was ever given to ``person``.
        """
        if key_id in self._forgotten:
            return None
        owner, key = self._keys[key_id]
        if owner != person:
            raise KeyError(key_id)
        return Fernet(key)

    def forget(self, person: str) -> None:
        """Delete the person's key (a right-to-erasure request); a later seal makes a new one."""
        key_id = self._current.pop(person, None)
        if key_id is not None:
            del self._keys[key_id]
            self._forgotten.add(key_id)


def personal_fields(schema: dict[str, Any]) -> list[str]:
    """The fields that the schema marks as personal."""
    return [n for n, s in schema.get("properties", {}).items() if s.get("x-personal")]


# --8<-- [start:seal]
def seal(data: dict[str, Any], schema: dict[str, Any], keys: KeyStore, person: str) -> dict:
    """A copy of ``data`` with every personal field encrypted with ``person``'s key."""
    key_id, box = keys.key(person)
    return {name: {"sealed": box.encrypt(json.dumps(value).encode()).decode(), "key": key_id}
            if name in personal_fields(schema) else value for name, value in data.items()}


def is_sealed(value: Any) -> bool:
    """A sealed field: a key id and a Fernet token, never text that merely sits in the wrapper."""
    if not (isinstance(value, dict) and set(value) == {"sealed", "key"}
            and isinstance(value["sealed"], str)):
        return False
    try:
        token = base64.urlsafe_b64decode(value["sealed"].encode("ascii"))
    except (UnicodeEncodeError, binascii.Error):
        return False
    # Fernet: version 0x80, 8-byte time, 16-byte IV, AES blocks, 32-byte HMAC
    return token[:1] == b"\x80" and len(token) >= 73 and (len(token) - 57) % 16 == 0


def guard(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Refuse to publish when a personal field is in clear; return ``data`` otherwise."""
    clear = [n for n in personal_fields(schema) if n in data and not is_sealed(data[n])]
    if clear:
        raise PersonalDataError(f"personal field(s) {', '.join(clear)} not sealed: not publishing")
    return data


def unseal(data: dict[str, Any], schema: dict[str, Any], keys: KeyStore,
           person: str) -> dict[str, Any]:
    """A copy with personal fields decrypted; ``None`` where the key was forgotten."""
    opened = dict(data)
    for name in (n for n in personal_fields(schema) if n in data):
        try:
            box = keys.find(data[name]["key"], person)
            opened[name] = None if box is None else json.loads(box.decrypt(data[name]["sealed"]))
        except (InvalidToken, KeyError, TypeError):
            raise PersonalDataError(f"field {name!r} was not sealed with {person}'s key") from None
    return opened
# --8<-- [end:seal]


def main() -> None:
    """Seal an entry, read it with and without keys, then erase its author."""
    keys = KeyStore()
    entry = {"entry_id": "e-9", "author_id": "ana", "text": "Argued with my sister again.",
             "mood": "low", "word_count": 5}
    try:
        guard(entry, ENTRY_SCHEMA)
    except PersonalDataError as refused:
        print(f"guard: {refused}")
    event = guard(seal(entry, ENTRY_SCHEMA, keys, "ana"), ENTRY_SCHEMA)
    shown = {n: f"<sealed, {len(v['sealed'])} chars>" if isinstance(v, dict) else v
             for n, v in event.items()}
    print(f"published : {shown}")
    print(f"reflection: {unseal(event, ENTRY_SCHEMA, keys, 'ana')}")
    analytics = {n: v for n, v in event.items() if n not in personal_fields(ENTRY_SCHEMA)}
    print(f"analytics : {analytics}")
    keys.forget("ana")
    print(f"erased    : {unseal(event, ENTRY_SCHEMA, keys, 'ana')}")


if __name__ == "__main__":
    main()
