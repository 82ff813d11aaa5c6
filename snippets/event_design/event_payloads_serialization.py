"""One event in three encodings: JSON, MessagePack and Avro (with its schema, via fastavro).

JSON repeats every field name in every event and is readable by anything.
MessagePack is JSON's data model in binary: still self-describing, smaller,
faster. Avro writes values only, in the order its schema gives, so it is the
smallest, but a reader needs the writer's schema to decode a single byte;
that is what a schema registry is for.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import msgpack

# --8<-- [start:avro]
ENTRY_AVRO = fastavro.parse_schema({
    "type": "record", "name": "EntryWritten", "namespace": "coaching.entry",
    "fields": [
        {"name": "entry_id", "type": "string"},
        {"name": "author_id", "type": "string"},
        {"name": "text", "type": "string"},
        {"name": "mood", "type": {"type": "record", "name": "Mood", "fields": [
            {"name": "label", "type": {"type": "enum", "name": "MoodLabel",
                                       "symbols": ["awful", "low", "ok", "good", "great"]}},
            {"name": "score", "type": "int"}]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "word_count", "type": "int"},
        {"name": "language", "type": "string", "default": "und"},
    ],
})
# --8<-- [end:avro]


# --8<-- [start:codecs]
def json_encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def json_decode(blob: bytes) -> dict[str, Any]:
    return json.loads(blob)


def msgpack_encode(event: dict[str, Any]) -> bytes:
    return msgpack.packb(event)


def msgpack_decode(blob: bytes) -> dict[str, Any]:
    return msgpack.unpackb(blob)


def avro_encode(event: dict[str, Any]) -> bytes:
    """Values only, no field names and no schema: the reader must know the schema."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, ENTRY_AVRO, event)
    return out.getvalue()


def avro_decode(blob: bytes) -> dict[str, Any]:
    """Decode with the writer's schema; bytes left over mean it was another schema."""
    buffer = io.BytesIO(blob)
    try:
        event = fastavro.schemaless_reader(buffer, ENTRY_AVRO, ENTRY_AVRO)
    except Exception as error:  # damaged bytes fail in many ways: EOF, bad index, bad UTF-8
        raise ValueError(f"not an EntryWritten record ({type(error).__name__}: {error}); "
                         "damaged, or written with another schema") from error
    if left := len(blob) - buffer.tell():
        raise ValueError(f"{left} bytes left after the record: written with another schema?")
    return event


CODECS = {"JSON": (json_encode, json_decode),
          "MessagePack": (msgpack_encode, msgpack_decode),
          "Avro": (avro_encode, avro_decode)}
# --8<-- [end:codecs]


def sample_entry(words: int = 12) -> dict[str, Any]:
    """A ``coaching.entry.written`` v3 payload whose text has ``words`` words."""
    text = " ".join(["calm"] * words)
    return {"entry_id": "e-42", "author_id": "ana", "text": text,
            "mood": {"label": "good", "score": 4}, "tags": ["run", "sleep"],
            "word_count": words, "language": "en"}


def main() -> None:
    """Encode one short and one long entry in each format and decode them back."""
    for words in (12, 400):
        event = sample_entry(words)
        sizes = {}
        for name, (encode, decode) in CODECS.items():
            blob = encode(event)
            assert decode(blob) == event, name
            sizes[name] = len(blob)
        print(f"entry of {words} words: " + ", ".join(
            f"{name} {size} bytes ({size / sizes['JSON']:.0%})" for name, size in sizes.items()))
    blob = avro_encode(sample_entry())
    print(f"the Avro bytes begin {blob[:16]!r}: no field names, only values")


if __name__ == "__main__":
    main()
