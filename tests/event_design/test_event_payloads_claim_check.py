"""Claim check: large payloads go aside and come back verified; a swapped, missing or forged
blob is refused, and a hostile reference never reaches outside the store."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_design.event_payloads_claim_check import (
    THRESHOLD,
    BlobStore,
    ClaimCheckError,
    main,
    publish_voice_note,
    read_voice_note,
)


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path / "blobs")


def test_the_threshold_decides_inline_or_claim_check(store):
    at_limit = publish_voice_note(store, "e-1", b"a" * THRESHOLD)
    above = publish_voice_note(store, "e-2", b"a" * (THRESHOLD + 1))
    assert "audio_base64" in at_limit and "claim" not in at_limit
    assert set(above) == {"entry_id", "media_type", "size", "claim"}
    assert above["claim"]["sha256"] == hashlib.sha256(b"a" * (THRESHOLD + 1)).hexdigest()
    assert len(json.dumps(above)) < 300
    assert list(store.root.iterdir()) == [store.root / above["claim"]["ref"]]


@settings(max_examples=40, deadline=None)
@given(audio=st.binary(max_size=3000), threshold=st.integers(0, 3000))
def test_any_payload_reads_back_exactly_whichever_way_it_travelled(tmp_path_factory, audio,
                                                                  threshold):
    store = BlobStore(tmp_path_factory.mktemp("blobs"))
    event = json.loads(json.dumps(publish_voice_note(store, "e", audio, threshold)))
    assert read_voice_note(store, event) == audio


def test_the_same_audio_is_stored_once_and_no_temporary_file_is_left(store):
    audio = b"x" * (THRESHOLD * 2)
    first = publish_voice_note(store, "e-1", audio)
    second = publish_voice_note(store, "e-2", audio)
    assert first["claim"] == second["claim"]
    assert [p.name for p in store.root.iterdir()] == [first["claim"]["ref"]]


def test_a_swapped_or_truncated_blob_is_refused(store):
    event = publish_voice_note(store, "e-1", b"y" * (THRESHOLD + 10))
    path = store.root / event["claim"]["ref"]
    path.write_bytes(b"y" * THRESHOLD)
    with pytest.raises(ClaimCheckError, match="does not match the hash and size in the event"):
        read_voice_note(store, event)
    path.write_bytes(b"z" * (THRESHOLD + 10))
    with pytest.raises(ClaimCheckError, match="refusing to use it"):
        read_voice_note(store, event)


def test_a_forged_claim_that_points_at_another_blob_is_refused(store):
    mine = publish_voice_note(store, "e-1", b"m" * (THRESHOLD + 1))
    theirs = publish_voice_note(store, "e-2", b"t" * (THRESHOLD + 1))
    forged = {**mine, "claim": {**mine["claim"], "ref": theirs["claim"]["ref"]}}
    with pytest.raises(ClaimCheckError, match="does not match"):
        read_voice_note(store, forged)


def test_a_missing_blob_is_an_error_that_names_it(store):
    event = publish_voice_note(store, "e-1", b"q" * (THRESHOLD + 1))
    (store.root / event["claim"]["ref"]).unlink()
    with pytest.raises(ClaimCheckError, match=f"blob {event['claim']['ref'][:12]}... is not in"):
        read_voice_note(store, event)


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "A" * 64, "a" * 63, "",
                                 None, 42, "a" * 64 + "/x"])
def test_a_reference_that_is_not_a_sha256_never_touches_the_disk(store, ref):
    event = {"entry_id": "e", "size": 1, "claim": {"ref": ref, "sha256": "a" * 64}}
    with pytest.raises(ClaimCheckError, match="not a SHA-256 reference"):
        read_voice_note(store, event)


@pytest.mark.parametrize("data", [{"entry_id": "e"}, {"entry_id": "e", "claim": "abc"}])
def test_an_event_without_audio_or_claim_is_refused(store, data):
    with pytest.raises(ClaimCheckError, match="neither inline audio nor a claim"):
        read_voice_note(store, data)


def test_broken_inline_base64_is_refused(store):
    with pytest.raises(ValueError):
        read_voice_note(store, {"entry_id": "e", "audio_base64": "not base64!"})


def test_the_demo_claim_checks_the_long_note_and_catches_the_swap(capsys):
    main()
    out = capsys.readouterr().out
    assert "e-1:     2,000 bytes of audio -> event of 2,748 bytes (inline)" in out
    assert "e-2: 1,024,000 bytes of audio -> event of   227 bytes (claim" in out
    assert "after the blob was swapped: blob" in out


@pytest.mark.parametrize("damage", [b"", b"half a recording", b"v" * (THRESHOLD + 1)])
def test_publishing_again_repairs_a_damaged_blob_instead_of_trusting_its_name(store, damage):
    audio = b"v" * THRESHOLD + b"w"
    event = publish_voice_note(store, "e-1", audio)
    (store.root / event["claim"]["ref"]).write_bytes(damage)  # truncated, emptied or swapped
    with pytest.raises(ClaimCheckError, match="does not match"):
        read_voice_note(store, event)
    again = publish_voice_note(store, "e-1", audio)  # the producer retries with the audio
    assert again == event
    assert read_voice_note(store, again) == audio
    assert read_voice_note(store, event) == audio  # the first event's claim is good again
    assert [p.name for p in store.root.iterdir()] == [event["claim"]["ref"]]


def test_a_failed_write_leaves_no_temporary_file_and_no_blob(store, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    with pytest.raises(OSError, match="No space left on device"):
        publish_voice_note(store, "e-1", b"n" * (THRESHOLD + 1))
    assert list(store.root.iterdir()) == []


def test_a_producer_sigkilled_before_the_rename_leaves_no_half_blob_and_a_retry_stores_it(store):
    import signal
    import subprocess
    import sys

    audio = bytes(range(256)) * 1_000
    child = ("import os, signal, sys\n"
             "from snippets.event_design.event_payloads_claim_check import BlobStore\n"
             "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
             "BlobStore(sys.argv[1]).put(bytes(range(256)) * 1_000)\n")
    done = subprocess.run([sys.executable, "-c", child, str(store.root)], timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL
    digest = hashlib.sha256(audio).hexdigest()
    assert not (store.root / digest).exists()  # only the orphaned temporary file
    with pytest.raises(ClaimCheckError, match="is not in the store"):
        store.get(digest)
    event = publish_voice_note(store, "e-1", audio)
    assert read_voice_note(store, event) == audio
