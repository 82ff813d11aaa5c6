"""Claim check: a large payload is stored aside and the event carries a reference to it.

Above a size threshold the producer writes the payload to a blob store, named
by its SHA-256, and publishes an event holding the reference (where the blob
is), its hash (what the blob must be), its size and its media type. The
consumer fetches the blob and checks hash and size before using it, so a
swapped or truncated blob is refused, not trusted. Below the threshold the
payload travels inline as before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

THRESHOLD = 64 * 1024
DIGEST = re.compile(r"[0-9a-f]{64}")


class ClaimCheckError(ValueError):
    """A claim cannot be honoured: missing, malformed or tampered blob."""


# --8<-- [start:store]
class BlobStore:
    """Content-addressed files on disk: a blob's name is its SHA-256."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, blob: bytes) -> str:
        """Store ``blob`` (atomically, once) and return its SHA-256 in hex.

        A file already under that name is kept only if it holds exactly
        ``blob``: a truncated or swapped one is replaced, so publishing the
        audio again repairs it. A failed write leaves no temporary file.
        """
        digest = hashlib.sha256(blob).hexdigest()
        path = self.root / digest
        try:
            if path.read_bytes() == blob:
                return digest  # stored once: the same audio is not written twice
        except FileNotFoundError:
            pass
        handle, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(blob)
            os.replace(tmp, path)  # readers never see half a file
        except BaseException:
            os.unlink(tmp)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The blob named ``digest``; a name that is not a SHA-256 is refused."""
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise ClaimCheckError(f"not a SHA-256 reference: {digest!r}")
        try:
            return (self.root / digest).read_bytes()
        except FileNotFoundError:
            raise ClaimCheckError(f"blob {digest[:12]}... is not in the store") from None
# --8<-- [end:store]


# --8<-- [start:claim]
def publish_voice_note(store: BlobStore, entry_id: str, audio: bytes,
                       threshold: int = THRESHOLD) -> dict[str, Any]:
    """The event for a dictated entry: the audio inline if small, else a claim check."""
    data: dict[str, Any] = {"entry_id": entry_id, "media_type": "audio/ogg", "size": len(audio)}
    if len(audio) <= threshold:
        return {**data, "audio_base64": base64.b64encode(audio).decode()}
    digest = hashlib.sha256(audio).hexdigest()
    return {**data, "claim": {"ref": store.put(audio), "sha256": digest}}


def read_voice_note(store: BlobStore, data: dict[str, Any]) -> bytes:
    """The audio of an event, fetched and verified when it was claim-checked."""
    if "audio_base64" in data:
        return base64.b64decode(data["audio_base64"], validate=True)
    claim = data.get("claim")
    if not isinstance(claim, dict):
        raise ClaimCheckError("event has neither inline audio nor a claim")
    blob = store.get(claim.get("ref"))
    if hashlib.sha256(blob).hexdigest() != claim.get("sha256") or len(blob) != data.get("size"):
        raise ClaimCheckError(f"blob {claim['ref'][:12]}... does not match the hash and size "
                              "in the event: refusing to use it")
    return blob
# --8<-- [end:claim]


def main() -> None:
    """A short voice note travels inline; a long one is claim-checked; a swap is caught."""
    with tempfile.TemporaryDirectory() as folder:
        store = BlobStore(folder)
        short, long = b"\x01" * 2_000, bytes(range(256)) * 4_000  # 2 KB and 1 MB of "audio"
        for entry_id, audio in (("e-1", short), ("e-2", long)):
            event = publish_voice_note(store, entry_id, audio)
            size = len(json.dumps(event))
            how = "inline" if "audio_base64" in event else f"claim {event['claim']['ref'][:12]}..."
            back = read_voice_note(store, event)
            print(f"{entry_id}: {len(audio):>9,} bytes of audio -> event of {size:>5,} bytes "
                  f"({how}); read back intact: {back == audio}")
        (Path(folder) / event["claim"]["ref"]).write_bytes(b"someone else's recording")
        try:
            read_voice_note(store, event)
        except ClaimCheckError as refused:
            print(f"after the blob was swapped: {refused}")


if __name__ == "__main__":
    main()
