"""Personal data in events: keep it out, or seal each personal field with its owner's key.

An event is copied into brokers, logs, backups, replays and other teams'
stores, and you cannot delete every copy. So the schema marks personal
fields (``"x-personal": true``), a guard refuses to publish them in clear,
and ``seal`` encrypts each one with a key that belongs to the person. Forget
the key and every copy, everywhere, becomes unreadable: crypto-shredding.
A consumer without access to the keys still reads the rest of the event.
"""

from __future__ import annotations

import json
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
    """One key per person. Forgetting a key erases that person's sealed fields everywhere."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def key(self, person: str) -> Fernet:
        """The person's key, created on first use."""
        return Fernet(self._keys.setdefault(person, Fernet.generate_key()))

    def find(self, person: str) -> Fernet | None:
        """The person's key, or None once it has been forgotten."""
        return Fernet(self._keys[person]) if person in self._keys else None

    def forget(self, person: str) -> None:
        """Delete the key (a right-to-erasure request)."""
        self._keys.pop(person, None)


def personal_fields(schema: dict[str, Any]) -> list[str]:
    """The fields that the schema marks as personal."""
    return [n for n, s in schema.get("properties", {}).items() if s.get("x-personal")]


# --8<-- [start:seal]
def seal(data: dict[str, Any], schema: dict[str, Any], keys: KeyStore, person: str) -> dict:
    """A copy of ``data`` with every personal field encrypted with ``person``'s key."""
    box = keys.key(person)
    return {name: {"sealed": box.encrypt(json.dumps(value).encode()).decode()}
            if name in personal_fields(schema) else value for name, value in data.items()}


def guard(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Refuse to publish when a personal field is in clear; return ``data`` otherwise."""
    clear = [n for n in personal_fields(schema)
             if n in data and not (isinstance(data[n], dict) and set(data[n]) == {"sealed"})]
    if clear:
        raise PersonalDataError(f"personal field(s) {', '.join(clear)} not sealed: not publishing")
    return data


def unseal(data: dict[str, Any], schema: dict[str, Any], keys: KeyStore,
           person: str) -> dict[str, Any]:
    """A copy with personal fields decrypted; ``None`` where the key was forgotten."""
    box, opened = keys.find(person), dict(data)
    for name in (n for n in personal_fields(schema) if n in data):
        if box is None:
            opened[name] = None
            continue
        try:
            opened[name] = json.loads(box.decrypt(data[name]["sealed"]))
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
