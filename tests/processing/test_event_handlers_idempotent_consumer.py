"""Tests of the SQLite inbox: duplicates, crashes, fan-out, keys, concurrency and retention."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_handlers_idempotent_consumer import (
    IdempotentConsumer,
    Message,
    count_sessions,
    count_words,
    main,
    purge_inbox,
)

ROOT = Path(__file__).resolve().parents[2]


def connect(path: str | Path = ":memory:") -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=10)


def entry(n: int, goal: str = "run 5 km", words: int = 10) -> Message:
    return Message(f"msg-{n}", "EntryWritten", {"goal": goal, "words": words}, "session-1")


def totals(conn: sqlite3.Connection) -> tuple[dict[str, int], int]:
    sessions = dict(conn.execute("SELECT goal, n FROM sessions").fetchall())
    return sessions, conn.execute("SELECT total FROM words").fetchone()[0]


def test_a_redelivered_message_changes_nothing():
    conn = connect()
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions)
    assert consumer.handle(entry(1)) is True
    assert consumer.handle(entry(1)) is False
    assert consumer.handle(entry(1)) is False
    assert conn.execute("SELECT n FROM sessions").fetchone() == (1,)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["run", "sleep", "read"]),
                          st.integers(0, 500)), min_size=1, max_size=30),
       st.data())
def test_any_mix_of_duplicates_and_reordering_gives_the_state_of_one_delivery_each(unique, data):
    messages = {n: entry(n, goal, words) for n, goal, words in unique}  # last one wins per id
    deliveries = data.draw(st.lists(st.sampled_from(sorted(messages)), min_size=0, max_size=60))
    deliveries += sorted(messages)  # every message arrives at least once
    deliveries = data.draw(st.permutations(deliveries))
    conn = connect()
    goals = IdempotentConsumer(conn, "goal-tracker", count_sessions)
    words = IdempotentConsumer(conn, "word-counter", count_words)
    for n in deliveries:
        goals.handle(messages[n])
        words.handle(messages[n])
    expected: dict[str, int] = {}
    for message in messages.values():
        expected[message.data["goal"]] = expected.get(message.data["goal"], 0) + 1
    assert totals(conn) == (expected, sum(m.data["words"] for m in messages.values()))


def test_a_failing_handler_leaves_no_inbox_row_so_the_redelivery_applies_it():
    conn = connect()
    calls = []

    def flaky(conn: sqlite3.Connection, message: Message) -> None:
        calls.append(message.message_id)
        count_sessions(conn, message)
        if len(calls) == 1:
            raise ConnectionError("coach service unreachable")

    consumer = IdempotentConsumer(conn, "goal-tracker", flaky)
    with pytest.raises(ConnectionError):
        consumer.handle(entry(1))
    assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    assert consumer.handle(entry(1)) is True
    assert conn.execute("SELECT n FROM sessions").fetchone() == (1,)


CRASHING_CHILD = """
import os, sqlite3, sys
from snippets.processing.event_handlers_idempotent_consumer import (
    IdempotentConsumer, Message, count_sessions)

def crash_inside(conn, message):
    count_sessions(conn, message)   # the effect is written...
    os._exit(137)                   # ...and the process dies before COMMIT

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
IdempotentConsumer(conn, "goal-tracker", crash_inside).handle(
    Message("msg-1", "EntryWritten", {"goal": "run 5 km", "words": 10}))
"""


def test_a_process_killed_inside_the_transaction_loses_effect_and_row_together(tmp_path):
    db = tmp_path / "consumer.db"
    IdempotentConsumer(connect(db), "goal-tracker", count_sessions)  # create the schema
    done = subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(db)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 137, done.stderr
    conn = connect(db)
    assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions)
    assert consumer.handle(entry(1)) is True
    assert conn.execute("SELECT n FROM sessions").fetchone() == (1,)


def test_two_consumers_of_one_message_each_apply_it_because_the_key_includes_the_consumer():
    conn = connect()
    IdempotentConsumer(conn, "goal-tracker", count_sessions).handle(entry(1, words=50))
    IdempotentConsumer(conn, "word-counter", count_words).handle(entry(1, words=50))
    assert totals(conn) == ({"run 5 km": 1}, 50)


def test_keying_by_correlation_id_silently_drops_the_second_message_of_a_session():
    conn = connect()
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions,
                                  key=lambda m: m.correlation_id)
    assert consumer.handle(entry(1)) is True
    assert consumer.handle(entry(2)) is False  # a different message, same correlation id
    assert conn.execute("SELECT n FROM sessions").fetchone() == (1,)


@pytest.mark.parametrize("bad_id", ["", "   "])
def test_a_message_without_an_id_is_refused_by_name_and_nothing_is_stored(bad_id):
    conn = connect()
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions)
    consumer.handle(entry(1))
    with pytest.raises(ValueError, match="no usable idempotency key"):
        consumer.handle(Message(bad_id, "EntryWritten", {"goal": "run 5 km", "words": 1}))
    assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (1,)
    assert conn.execute("SELECT n FROM sessions").fetchone() == (1,)


def test_a_malformed_payload_raises_and_stores_nothing():
    conn = connect()
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions)
    with pytest.raises(KeyError, match="goal"):
        consumer.handle(Message("msg-9", "EntryWritten", {"words": 3}))
    assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)


def test_a_connection_that_is_not_in_autocommit_mode_is_refused():
    with pytest.raises(ValueError, match="autocommit mode"):
        IdempotentConsumer(sqlite3.connect(":memory:"), "goal-tracker", count_sessions)


def test_concurrent_consumers_on_separate_connections_apply_a_message_once(tmp_path):
    db = tmp_path / "shared.db"
    IdempotentConsumer(connect(db), "goal-tracker", count_sessions)
    rounds, workers = 20, 4
    barrier = threading.Barrier(workers)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        consumer = IdempotentConsumer(connect(db), "goal-tracker", count_sessions)
        for n in range(rounds):
            barrier.wait(timeout=10)  # every worker handles message n at the same moment
            applied = consumer.handle(entry(n))
            with lock:
                results.append(applied)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results.count(True) == rounds and len(results) == rounds * workers
    assert connect(db).execute("SELECT n FROM sessions").fetchone() == (rounds,)


def test_purging_forgets_only_rows_older_than_the_retention_window():
    conn = connect()
    now = [0.0]
    consumer = IdempotentConsumer(conn, "goal-tracker", count_sessions, clock=lambda: now[0])
    consumer.handle(entry(1))
    now[0] = 100.0
    consumer.handle(entry(2))
    assert purge_inbox(conn, retention=50, now=120.0) == 1
    assert consumer.handle(entry(2)) is False  # still remembered
    assert consumer.handle(entry(1)) is True  # forgotten: a late redelivery applies again
    with pytest.raises(ValueError, match="retention must be positive"):
        purge_inbox(conn, retention=0, now=120.0)


def test_the_demo_shows_dedup_fan_out_the_correlation_trap_and_early_purge(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "first delivery  : True True",
        "redelivery      : False False",
        "second entry    : True True",
        "state           : 2 sessions, 200 words",
    ]
    assert "applied ['msg-1']" in lines[4]
    assert lines[-2].startswith("redrive msg-1   : True")
    assert lines[-1] == "state           : 3 sessions"
