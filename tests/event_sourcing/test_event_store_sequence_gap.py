"""The sequence-gap pitfall, proven on a real PostgreSQL with concurrent writers.

Writers take a position and then hold their transaction open; a controller
commits them in the worst order it can (highest position first) while a
reader polls after every commit. The bigserial reader skips events; the
counter-row reader cannot, because no second writer gets a position while
the first is open.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from snippets.event_sourcing.event_store_sequence_gap import (
    TABLES,
    Reader,
    append_naive,
    append_safe,
    main,
)
from tests.event_sourcing.pages import shown_output

WRITERS = 6


@pytest.fixture
def url(postgres_db):
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute(TABLES)
    return postgres_db


def adversarial_schedule(url: str, append, table: str) -> tuple[list[int], list[int]]:
    """Run WRITERS concurrent writers, committing the highest held position first.

    Returns (positions the reader saw, positions stored)."""
    holding: dict[int, threading.Event] = {}
    lock = threading.Lock()
    conns = [psycopg.connect(url, autocommit=True) for _ in range(WRITERS)]
    pids = {c.info.backend_pid for c in conns}

    def write(conn: psycopg.Connection, number: int) -> None:
        release = threading.Event()
        with conn.transaction():
            position = append(conn, f"entry from writer {number}")
            with lock:
                holding[position] = release
            assert release.wait(30), "never released"

    with psycopg.connect(url, autocommit=True) as observer:
        reader = Reader(observer, table)
        threads = [threading.Thread(target=write, args=(c, n)) for n, c in enumerate(conns)]
        for thread in threads:
            thread.start()
        committed: set[int] = set()
        deadline = time.monotonic() + 60
        while len(committed) < WRITERS:
            assert time.monotonic() < deadline, "schedule did not finish"
            waiting = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) "
                "AND wait_event_type = 'Lock'", (list(pids),)).fetchone()[0]
            with lock:
                held = sorted(set(holding) - committed)
            if not held or len(held) + waiting < WRITERS - len(committed):
                time.sleep(0.005)  # someone is still on its way to a position or a lock
                continue
            latest = held[-1]  # the worst order: newest position commits first
            holding[latest].set()
            committed.add(latest)
            wait_until_committed(observer, table, latest)
            reader.poll()
        for thread in threads:
            thread.join(30)
        reader.poll()
        stored = [p for (p,) in observer.execute(f"SELECT position FROM {table} ORDER BY 1")]
    for conn in conns:
        conn.close()
    return reader.seen, stored


def wait_until_committed(conn: psycopg.Connection, table: str, position: int) -> None:
    deadline = time.monotonic() + 30
    while not conn.execute(f"SELECT 1 FROM {table} WHERE position = %s", (position,)).fetchone():
        assert time.monotonic() < deadline, f"position {position} never committed"
        time.sleep(0.005)


@pytest.mark.parametrize(("append", "table"), [
    pytest.param(append_naive, "naive_log", id="bigserial",
                 marks=pytest.mark.xfail(strict=True, reason="the pitfall: late commits skipped")),
    pytest.param(append_safe, "safe_log", id="counter-row"),
])
def test_a_reader_sees_every_event_whatever_order_concurrent_writers_commit_in(url, append, table):
    seen, stored = adversarial_schedule(url, append, table)
    assert len(stored) == WRITERS
    assert seen == stored


def test_the_bigserial_reader_loses_every_event_committed_after_a_newer_one(url):
    seen, stored = adversarial_schedule(url, append_naive, "naive_log")
    assert stored == list(range(1, WRITERS + 1))
    assert seen == [WRITERS]  # it moved its checkpoint to 6 and never looked back


def test_counter_row_positions_have_no_gaps_even_after_a_rollback(url):
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            append_safe(conn, "abandoned")
            raise RuntimeError("the writer gave up")
        assert append_safe(conn, "kept") == 1
        with pytest.raises(RuntimeError), conn.transaction():
            append_naive(conn, "abandoned")
            raise RuntimeError("the writer gave up")
        assert append_naive(conn, "kept") == 2  # a sequence never gives a number back


def test_main_shows_the_skip_and_the_fix_exactly_as_the_page_says(postgres_db, monkeypatch,
                                                                   capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    main()
    printed = capsys.readouterr().out.splitlines()
    assert printed == shown_output("event_store.md", "event_store_sequence_gap.py")
    assert printed == [
        "-- bigserial",
        "   A holds position 1, not committed yet",
        "   B committed position 2",
        "   reader polls: [2]",
        "   A commits",
        "   reader polls: []",
        "   stored 2, reader saw [2]: skipped 1",
        "-- counter row",
        "   A holds position 1, not committed yet",
        "   B waits for A's counter row lock",
        "   reader polls: []",
        "   A commits",
        "   reader polls: [1, 2]",
        "   stored 2, reader saw [1, 2]: skipped 0",
    ]


def test_main_without_a_server_says_how_to_point_it_at_one(monkeypatch, capsys):
    from tests.engines import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert "set DATABASE_URL" in capsys.readouterr().err
