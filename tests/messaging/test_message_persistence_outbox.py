"""The SQLite outbox: atomic saves, a relay that retries, and a relay killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.message_persistence_outbox import (
    Deduplicating,
    main,
    open_db,
    relay_once,
    save_entry,
    save_entry_then_publish,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_loses_an_event_with_the_dual_write_and_none_with_the_outbox(capsys):
    main()
    assert capsys.readouterr().out == (
        "dual write: entries stored 2, events published 1: 1 lost for good\n"
        "outbox    : entries [1, 2, 3] applied once each, 1 duplicate skipped\n")


def test_an_empty_entry_is_refused_and_nothing_stored_is_lost():
    db = open_db()
    save_entry(db, "ana", "ran 3 km")
    with pytest.raises(ValueError, match="entry of 'ana' is empty"):
        save_entry(db, "ana", "   ")
    assert db.execute("SELECT count(*) FROM entries").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)


def test_when_the_event_cannot_be_stored_the_entry_is_not_stored_either():
    db = open_db()
    db.execute("CREATE TRIGGER full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox full'); END")
    with pytest.raises(sqlite3.IntegrityError, match="outbox full"):
        save_entry(db, "ana", "ran 3 km")
    assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)


def test_a_failing_publish_leaves_the_event_for_the_next_run_in_order():
    db = open_db()
    for text in ("one", "two", "three"):
        save_entry(db, "ana", text)
    got: list[int] = []
    down = iter([False, True])  # the broker goes away on the second event

    def flaky(topic: str, payload: bytes) -> None:
        if next(down, False):
            raise ConnectionError("broker went away")
        got.append(json.loads(payload)["entry_id"])

    with pytest.raises(ConnectionError):
        relay_once(db, flaky)
    assert relay_once(db, flaky) == 2
    assert got == [1, 2, 3] and relay_once(db, flaky) == 0


RELAY_KILLED = """
    import os, signal, sys
    from snippets.messaging.message_persistence_outbox import open_db, relay_once

    db_path, broker_path = sys.argv[1:]
    published = 0

    def publish(topic, payload):
        global published
        with open(broker_path, "ab") as broker:  # the broker has it once this returns
            broker.write(payload + b"\\n")
        published += 1
        if published == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # between publish and mark

    relay_once(open_db(db_path), publish)
"""


def test_a_relay_killed_between_publish_and_mark_duplicates_and_never_loses(tmp_path):
    db_path, broker_path = tmp_path / "diary.db", tmp_path / "broker.log"
    db = open_db(str(db_path))
    for text in ("one", "two", "three", "four"):
        save_entry(db, "ana", text)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(RELAY_KILLED), str(db_path),
                           str(broker_path)], cwd=ROOT, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL

    def publish(topic: str, payload: bytes) -> None:
        with open(broker_path, "ab") as broker:
            broker.write(payload + b"\n")

    relay_once(open_db(str(db_path)), publish)  # the restarted relay
    consumer = Deduplicating()
    for line in broker_path.read_bytes().splitlines():
        consumer("entry.created", line)
    assert consumer.applied == [1, 2, 3, 4] and consumer.duplicates == 1


@settings(max_examples=50, deadline=None)
@given(entries=st.integers(1, 8), crashes=st.lists(st.booleans(), max_size=20))
def test_relay_crashes_anywhere_never_lose_an_event_and_duplicate_at_most_once_each(entries,
                                                                                     crashes):
    db = open_db()
    for n in range(entries):
        save_entry(db, "ana", f"entry {n}")
    consumer, plan = Deduplicating(), iter(crashes)

    def publish(topic: str, payload: bytes) -> None:
        consumer(topic, payload)
        if next(plan, False):
            raise SystemExit("relay killed after publish")

    for _ in range(len(crashes) + entries + 1):  # restart until it drains
        try:
            if relay_once(db, publish, batch=3) == 0:
                break
        except SystemExit:
            continue
    assert consumer.applied == list(range(1, entries + 1))
    assert consumer.duplicates <= sum(crashes)


def test_the_dual_write_publishes_entry_created_with_the_entry_id_and_user():
    db = open_db()
    sent: list[tuple[str, object]] = []

    def publish(topic: str, payload: bytes) -> None:
        sent.append((topic, json.loads(payload)))

    assert save_entry_then_publish(db, publish, "ana", "ran 3 km") == 1
    assert save_entry_then_publish(db, publish, "ben", "swam 1 km") == 2
    assert sent == [("entry.created", {"entry_id": 1, "user": "ana"}),
                    ("entry.created", {"entry_id": 2, "user": "ben"})]


def test_the_relay_publishes_each_stored_event_under_its_topic_with_its_id_entry_and_user():
    db = open_db()
    save_entry(db, "ana", "ran 3 km")
    save_entry(db, "ben", "swam 1 km")
    sent: list[tuple[str, dict]] = []
    assert relay_once(db, lambda topic, payload: sent.append((topic, json.loads(payload)))) == 2
    assert [(topic, event["entry_id"], event["user"]) for topic, event in sent] == [
        ("entry.created", 1, "ana"), ("entry.created", 2, "ben")]
    event_ids = [event["event_id"] for _, event in sent]
    assert event_ids == [row[0] for row in db.execute("SELECT event_id FROM outbox ORDER BY id")]
    assert len({uuid.UUID(event_id) for event_id in event_ids}) == 2  # one fresh id per event


def test_one_relay_run_publishes_at_most_100_events_and_the_next_run_the_rest():
    db = open_db()
    for n in range(101):
        save_entry(db, "ana", f"entry {n}")
    got: list[int] = []

    def publish(topic: str, payload: bytes) -> None:
        got.append(json.loads(payload)["entry_id"])

    assert relay_once(db, publish) == 100 and got == list(range(1, 101))
    assert relay_once(db, publish) == 1 and got[100:] == [101]


def test_the_consumer_applies_an_event_once_and_counts_every_duplicate_it_skips():
    db = open_db()
    save_entry(db, "ana", "ran 3 km")
    payloads: list[bytes] = []
    relay_once(db, lambda topic, payload: payloads.append(payload))
    consumer = Deduplicating()
    for _ in range(3):  # the same event, re-sent by two relays that died before marking it
        consumer("entry.created", payloads[0])
    assert consumer.applied == [1] and consumer.duplicates == 2
