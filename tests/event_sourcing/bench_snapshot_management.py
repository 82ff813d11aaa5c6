"""Rehydration time with and without a snapshot, at 100, 10k and 100k events, on
SQLite and PostgreSQL, plus what each event costs on disk.

One goal stream per size. The snapshot is taken 50 events before the end, which
is the average tail when snapshots are taken every 100 events. Both loads go
through the page's ``Repository`` and must produce the same state.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import psycopg

from snippets.event_sourcing import event_store_postgres, event_store_sqlite
from snippets.event_sourcing.snapshot_management import (
    Repository,
    Snapshot,
    SnapshotStore,
)
from tests.bench import support
from tests.engines import Engine, _postgres

SIZES = (100, 10_000, 100_000)
TAIL = 50
REPEATS = {100: 21, 10_000: 7, 100_000: 3}


def start_postgres() -> Engine:
    """A private PostgreSQL on a free port, started as tests/engines.py's fixture starts one."""
    return _postgres([]).start()


class PostgresSnapshots:
    """The page's SnapshotStore, in PostgreSQL: get and put with the same meaning."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TABLE IF NOT EXISTS snapshots (stream text PRIMARY KEY, "
                          "version int NOT NULL, schema int NOT NULL, state jsonb NOT NULL)")

    def get(self, stream: str) -> Snapshot | None:
        row = self.conn.execute("SELECT version, schema, state FROM snapshots WHERE stream = %s",
                                (stream,)).fetchone()
        return None if row is None else Snapshot(stream, *row)

    def put(self, snapshot: Snapshot, *, replace: bool = False) -> None:
        self.conn.execute(
            "INSERT INTO snapshots VALUES (%s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE SET "
            "version = excluded.version, schema = excluded.schema, state = excluded.state",
            (snapshot.stream, snapshot.version, snapshot.schema, psycopg.types.json.Jsonb(
                snapshot.state)))


def fill(store, module, goal: str, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 1000):
        batch = [module.NewEvent("SessionLogged", {"day": day, "minutes": 20 + day % 3 * 10})
                 for day in range(first, min(first + 1000, start + count))]
        store.append(f"goal-{goal}", batch, expected_version=first)


def measure(store, module, snapshots, size: int) -> tuple[float, float]:
    goal = f"n{size}"
    fill(store, module, goal, size - TAIL)
    Repository(store, snapshots, every=1).load(goal)  # writes the snapshot at size - TAIL
    fill(store, module, goal, TAIL, start=size - TAIL)
    full, snap = Repository(store, None), Repository(store, snapshots, every=10**9)
    with_snapshot = snap.load(goal)
    assert with_snapshot.snapshot_version == size - TAIL and with_snapshot.replayed == TAIL
    assert with_snapshot.goal.to_state() == full.load(goal).goal.to_state()
    repeats = REPEATS[size]
    return (support.median_seconds(lambda: full.load(goal), repeats=repeats),
            support.median_seconds(lambda: snap.load(goal), repeats=repeats))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        with event_store_sqlite.SQLiteEventStore(path) as store, \
                sqlite3.connect(Path(tmp) / "snapshots.db") as conn:
            for size in SIZES:
                full, snap = measure(store, event_store_sqlite, SnapshotStore(conn), size)
                rows.append(["SQLite", size, full, snap])
                print(rows[-1], flush=True)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sqlite_bytes = path.stat().st_size / sum(SIZES)
    engine = start_postgres()
    try:
        with event_store_postgres.PostgresEventStore(engine.url) as store:
            snapshots = PostgresSnapshots(engine.url)
            for size in SIZES:
                full, snap = measure(store, event_store_postgres, snapshots, size)
                rows.append(["PostgreSQL", size, full, snap])
                print(rows[-1], flush=True)
            store._conn.execute("VACUUM ANALYZE event_store.events")
            pg_bytes = store._conn.execute("SELECT pg_total_relation_size('event_store.events')"
                                           ).fetchone()[0] / sum(SIZES)
            snapshots.conn.close()
    finally:
        engine.stop()
        shutil.rmtree(engine.data_dir, ignore_errors=True)
    per_event = {"SQLite": sqlite_bytes, "PostgreSQL": pg_bytes}
    table = [[name, f"{size:,}", f"{full * 1000:,.1f}", f"{snap * 1000:,.2f}",
              f"{full / snap:,.0f} x", f"{full / size * 1e6:.1f}", f"{per_event[name]:.0f}"]
             for name, size, full, snap in rows]
    path = support.write(
        "event_sourcing/snapshot_management",
        columns=["Store", "Events", "Full replay (ms)", f"Snapshot + {TAIL} (ms)", "Speed-up",
                 "Replay per event (µs)", "Bytes per event"],
        rows=table,
        command="make bench BENCH=event_sourcing",
        note=f"Median of {REPEATS[100]}, {REPEATS[10_000]} and {REPEATS[100_000]} loads after one "
             "warm-up; events are ~40-byte JSON payloads; a load reads the stream and folds it "
             "into the goal (GoalProgress). PostgreSQL is local (loopback, fsync off); bytes per "
             "event are on disk, indexes included.",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
