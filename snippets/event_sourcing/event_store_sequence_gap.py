"""The sequence-gap pitfall on PostgreSQL: why a reader must not trust a bigserial.

A ``bigserial`` hands out its number when a row is inserted, and the row
becomes visible when its transaction commits. Two writers can commit in the
other order: the slow one takes position 1, the fast one takes 2 and commits
first. A reader that remembers "I have read up to 2" never sees 1.

The fix used here takes positions from a one-row counter. ``UPDATE ... SET
position = position + 1`` locks that row until the writer commits, so the
next writer waits, and positions become visible in order with no gaps.

Both allocators work inside the caller's transaction, so you can hold one open
and watch what a reader sees. ``main`` replays the race step by step.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = """
CREATE TABLE IF NOT EXISTS naive_log (position bigserial PRIMARY KEY, body text NOT NULL);
CREATE TABLE IF NOT EXISTS safe_log (position bigint PRIMARY KEY, body text NOT NULL);
CREATE TABLE IF NOT EXISTS safe_log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), position bigint NOT NULL);
INSERT INTO safe_log_head (position) VALUES (0) ON CONFLICT DO NOTHING;
"""
Conn = psycopg.Connection[Any]


# --8<-- [start:allocators]
def append_naive(conn: Conn, body: str) -> int:
    """The pitfall: the position comes from a sequence, in insert order."""
    return conn.execute("INSERT INTO naive_log (body) VALUES (%s) RETURNING position",
                        (body,)).fetchone()[0]


def append_safe(conn: Conn, body: str) -> int:
    """The fix: the position comes from a counter row locked until COMMIT."""
    (position,) = conn.execute(
        "UPDATE safe_log_head SET position = position + 1 RETURNING position").fetchone()
    conn.execute("INSERT INTO safe_log (position, body) VALUES (%s, %s)", (position, body))
    return position


class Reader:
    """A poller that keeps a checkpoint: the last position it has handled."""

    def __init__(self, conn: Conn, table: str) -> None:
        self.conn, self.table, self.checkpoint = conn, table, 0
        self.seen: list[int] = []

    def poll(self) -> list[int]:
        rows = self.conn.execute(f"SELECT position FROM {self.table} WHERE position > %s "
                                 "ORDER BY position", (self.checkpoint,)).fetchall()
        new = [position for (position,) in rows]
        if new:
            self.checkpoint = new[-1]
        self.seen += new
        return new
# --8<-- [end:allocators]


def commits_or_waits(thread: threading.Thread, observer: Conn, pid: int,
                     timeout: float = 10.0) -> bool:
    """Wait until ``thread`` has finished (False) or backend ``pid`` waits on a lock (True)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return False
        row = observer.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                               (pid,)).fetchone()
        if row and row[0] == "Lock":
            return True
        thread.join(0.01)
    raise TimeoutError(f"backend {pid} neither finished nor waited within {timeout} s")


# --8<-- [start:demo]
def race(url: str, append: Any, table: str) -> list[str]:
    """Writer A takes a position and stays open; writer B appends; then A commits."""
    lines = []
    with psycopg.connect(url, autocommit=True) as slow, \
            psycopg.connect(url, autocommit=True) as fast, \
            psycopg.connect(url, autocommit=True) as reading:
        reader = Reader(reading, table)
        b_done: list[int] = []
        with slow.transaction():
            a = append(slow, "A: a long evening entry")
            lines.append(f"A holds position {a}, not committed yet")
            b = threading.Thread(target=lambda: b_done.append(append(fast, "B: quick note")))
            b.start()
            if commits_or_waits(b, reading, fast.info.backend_pid):
                lines.append("B waits for A's counter row lock")
            else:
                lines.append(f"B committed position {b_done[0]}")
            lines.append(f"reader polls: {reader.poll()}")
        lines.append("A commits")
        b.join(10)
        lines.append(f"reader polls: {reader.poll()}")
        total = reading.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        skipped = total - len(reader.seen)
        lines.append(f"stored {total}, reader saw {reader.seen}: skipped {skipped}")
    return lines


def main() -> None:
    """Replay the race with each allocator, in a schema of its own."""
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("DROP SCHEMA IF EXISTS sequence_gap_demo CASCADE")
            conn.execute("CREATE SCHEMA sequence_gap_demo")
    except psycopg.OperationalError as error:
        print(f"No PostgreSQL at {url}: set DATABASE_URL to a database you may write to.\n"
              f"({str(error).strip().splitlines()[0]})", file=sys.stderr)
        raise SystemExit(1) from None
    url = make_conninfo(url, options="-c search_path=sequence_gap_demo")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLES)
    for name, append, table in [("bigserial", append_naive, "naive_log"),
                                ("counter row", append_safe, "safe_log")]:
        print(f"-- {name}")
        for line in race(url, append, table):
            print(f"   {line}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
