"""CQRS costs, measured: query latency with and without a read model, write throughput with
inline and asynchronous projection, and projection lag under a sustained write load.

Four data files, one per table on the Performance Considerations page:

* ``queries``: the coaching dashboard of one user answered from its read model, by
  replaying the whole log, and by replaying the user's events (indexed), at 1,000
  and 100,000 events (100 users);
* ``writes``: journal entries written one command at a time to a SQLite file (WAL),
  durably (fsync at every commit) and with synchronous=NORMAL, with no read model,
  with 1 or 4 read models updated in the command's transaction, and with the same
  read models kept by the asynchronous projector running at the same time, in the
  events' file or in a file of their own;
* ``lag``: a writer at a fixed rate for 3 s while the projector keeps 4 read models in their
  own file (synchronous=NORMAL, so that the projection's own cost shows, not the disk's);
  the lag of
  each event is the time from its commit to the commit of the batch that applied it;
* ``lock_waits``: how long each of 300 commands, paced at 200 a second, takes while a projector works through a
  backlog in batches that each hold their transaction open for about 50 ms, with the read
  models in the events' file or in their own, against no projector at all.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

from snippets.cqrs.performance_considerations_cost import (
    CoachingStore,
    coaching_history,
)
from snippets.cqrs.synchronization_strategies_projection import JournalApp, summarize
from tests.bench import support

USERS = 100
SIZES = (1_000, 100_000)
REPEATS = {"read model": 201, "recompute, user's events": 21, "recompute, whole log": 3}
WRITES = 1_000
RATES = (200, 1_000, None)  # events per second; None: as fast as one writer can go
LOAD_SECONDS = 3.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.3f}" if seconds < 0.01 else f"{seconds * 1000:,.1f}"


def queries() -> list[list[object]]:
    rows = []
    for size in SIZES:
        store, events = CoachingStore(), coaching_history(size, USERS)
        for start in range(0, size, 5_000):
            store.append(events[start:start + 5_000])
        ways = {"read model": store.from_read_model,
                "recompute, user's events": store.recompute_from_user_events,
                "recompute, whole log": store.recompute_from_log}
        answers = {name: way("u042") for name, way in ways.items()}
        assert len({a.dashboard for a in answers.values()}) == 1, answers
        base = None
        for name, way in ways.items():
            seconds = support.median_seconds(lambda way=way: way("u042"), repeats=REPEATS[name])
            base = base or seconds
            rows.append([f"{size:,}", name, f"{answers[name].work:,}", ms(seconds),
                         f"{seconds / base:,.0f} x"])
        print(rows[-3:], flush=True)
    return rows


def _table(name: str):
    def project(db, event) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (user_id TEXT PRIMARY KEY, n INT)")
        db.execute(f"INSERT INTO {name} VALUES (?, 1) ON CONFLICT (user_id) DO UPDATE SET "
                   "n = n + 1", (event.data["user"],))
    project.__name__ = name
    return project


FOUR = [summarize, _table("words_by_day"), _table("streaks"), _table("coach_inbox")]


def open_app(path: Path, durable: bool, **options) -> JournalApp:
    """The page's JournalApp; ``durable=False`` sets synchronous=NORMAL on its connections
    (WAL then syncs at checkpoints, not at every commit: a crash of the machine, not of the
    process, can lose the last commits)."""
    app = JournalApp(path, **options)
    if not durable:
        for db in (app._writer, app._projector, app._reader):
            db.execute("PRAGMA synchronous=NORMAL")
    return app


def write_run(path: Path, durable: bool, mode: str, projections: list, start: bool,
              apart: bool = False) -> tuple[float, float]:
    """(writes per second, seconds from the last write until the read models had it)."""
    app = open_app(path, durable, mode=mode, projections=projections,
                   read_path=path.with_suffix(".read.db") if apart else None)
    if start:
        app.start()
    began = time.perf_counter()
    for i in range(WRITES):
        token = app.write_entry(f"u{i % USERS}", f"e{i}", 100)
    written = time.perf_counter()
    if mode == "inline" or start:
        app.wait_for(token, timeout=120)
    caught_up = time.perf_counter()
    app.close()
    return WRITES / (written - began), caught_up - written


def writes() -> list[list[object]]:
    rows = []
    cases = [("none (append only)", "async", [], False, False),
             ("1, inline", "inline", FOUR[:1], False, False),
             ("1, async, same file", "async", FOUR[:1], True, False),
             ("4, inline", "inline", FOUR, False, False),
             ("4, async, same file", "async", FOUR, True, False),
             ("4, async, own file", "async", FOUR, True, True)]
    with tempfile.TemporaryDirectory() as tmp:
        for durable in (True, False):
            base = None
            for n, (label, mode, projections, start, apart) in enumerate(cases):
                rate, behind = write_run(Path(tmp) / f"w{durable}{n}.db", durable, mode,
                                         projections, start, apart)
                base = base or rate
                rows.append(["fsync every commit" if durable else "synchronous=NORMAL", label,
                             f"{rate:,.0f}", f"{rate / base:.2f}",
                             "0 (same transaction)" if mode == "inline" else
                             ("never (no projector)" if not start else ms(behind))])
                print(rows[-1], flush=True)
    return rows


def lag_run(directory: Path, rate: float | None) -> list[object]:
    app = open_app(directory / f"lag-{rate}.db", False, mode="async", batch_size=100,
                   poll_interval=0.05, projections=FOUR,
                   read_path=directory / f"lag-{rate}.read.db")
    lags: list[float] = []
    behind = [0]
    lock = threading.Lock()

    def record(batch, now: float) -> None:
        with lock:
            lags.extend(now - event.recorded_at for event in batch)

    app.on_batch = record
    app.start()
    began = time.time()
    written = 0
    while (elapsed := time.time() - began) < LOAD_SECONDS:
        if rate is not None and written >= elapsed * rate:
            time.sleep(min(1 / rate, 0.002))  # pace the writer
            continue
        app.write_entry(f"u{written % USERS}", f"e{written}", 100)
        written += 1
        if written % 50 == 0:
            behind[0] = max(behind[0], app.lag().events)
    app.wait_for(written, timeout=120)
    app.close()
    achieved = written / LOAD_SECONDS
    cuts = statistics.quantiles(lags, n=100)
    return ["max" if rate is None else f"{rate:,}", f"{achieved:,.0f}", ms(cuts[49]),
            ms(cuts[98]), ms(max(lags)), f"{behind[0]:,}"]


def lag() -> list[list[object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in RATES:
            rows.append(lag_run(Path(tmp), rate))
            print(rows[-1], flush=True)
    return rows


LOCK_WRITES = 300
LOCK_RATE = 200  # commands per second, at most
BACKLOG = 200_000  # more than the projector can apply while the writes run


def slow_read_model(db, event) -> None:
    """A read model that takes half a millisecond per event (an index, a remote call)."""
    summarize(db, event)
    time.sleep(0.0005)


def lock_run(directory: Path, label: str, start: bool, apart: bool) -> list[object]:
    path = directory / f"locks-{len(label)}.db"
    app = open_app(path, False, mode="async", projections=[slow_read_model], batch_size=100,
                   read_path=path.with_suffix(".read.db") if apart else None)
    with app._writer:  # a backlog, appended directly: positions 1..BACKLOG
        app._writer.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", (
            (p, "journal-u0", '{"user": "u0", "entry_id": "b", "words": 1}', 0.0)
            for p in range(1, BACKLOG + 1)))
    batches: list[float] = []
    app.on_batch = lambda batch, now: batches.append(time.perf_counter())
    if start:
        app.start()
        while len(batches) < 2:  # the projector is in its stride
            time.sleep(0.01)
    waits = []
    for i in range(LOCK_WRITES):
        time.sleep(1 / LOCK_RATE)  # commands arrive spread over many batches
        began = time.perf_counter()
        app.write_entry(f"u{i % USERS}", f"e{i}", 100)
        waits.append(time.perf_counter() - began)
    applied = app.position()
    app.close()
    assert not start or applied < BACKLOG, "the backlog ran out: the projector was idle"
    lengths = [b - a for a, b in itertools.pairwise(batches)]
    cuts = statistics.quantiles(waits, n=100)
    return [label, ms(statistics.median(lengths)) if lengths else "-",
            ms(statistics.median(waits)), ms(cuts[98]), ms(max(waits)),
            f"{sum(w > 0.005 for w in waits)}"]


def lock_waits() -> list[list[object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, start, apart in [("no projector", False, False),
                                    ("projector, read models in their own file", True, True),
                                    ("projector, read models in the events' file", True, False)]:
            rows.append(lock_run(Path(tmp), label, start, apart))
            print(rows[-1], flush=True)
    return rows


COMMAND = "make bench BENCH=cqrs"


def write_queries() -> None:
    support.write("cqrs/performance_considerations_queries",
                  columns=["Events", "Answered by", "Rows read", "Median (ms)", "Relative"],
                  rows=queries(), command=COMMAND,
                  note=f"SQLite in memory, {USERS} users, one user's dashboard; median of "
                       "201, 21 and 3 runs after a warm-up.")


def write_writes() -> None:
    support.write("cqrs/performance_considerations_writes",
                  columns=["Durability", "Read models", "Commands/s", "Relative",
                           "Read models current after the last write"],
                  rows=writes(), command=COMMAND,
                  note=f"{WRITES:,} commands, one per transaction, one writer thread, SQLite "
                       "file in WAL mode on ext4; in async mode the projector thread runs in "
                       "the same process; in the same file it competes for the same write "
                       "lock, in its own file it only reads the log.")


def write_lag() -> None:
    support.write("cqrs/performance_considerations_lag",
                  columns=["Target writes/s", "Achieved writes/s", "Lag p50 (ms)",
                           "Lag p99 (ms)", "Lag max (ms)", "Most events behind"],
                  rows=lag(), command=COMMAND,
                  note=f"{LOAD_SECONDS:.0f} s of writes per row (synchronous=NORMAL), 4 read "
                       "models in their own file, projector batches of up to 100; lag = "
                       "projector commit time - event append time.")


def write_lock_waits() -> None:
    support.write("cqrs/performance_considerations_lock_waits",
                  columns=["While the commands run", "Batch length, median (ms)",
                           "Command median (ms)", "Command p99 (ms)", "Command max (ms)",
                           "Commands over 5 ms"],
                  rows=lock_waits(), command=COMMAND,
                  note=f"{LOCK_WRITES} commands, one writer thread pausing 1/{LOCK_RATE} s "
                       "before each (synchronous=NORMAL); the projector thread, in the same "
                       "process, works through a backlog in batches of 100 events at 0.5 ms "
                       "each; batch length = time between two batch commits.")


def main() -> None:
    """Write the four data files (each ``write_*`` function also runs alone)."""
    write_queries()
    write_writes()
    write_lag()
    write_lock_waits()


if __name__ == "__main__":
    main()
