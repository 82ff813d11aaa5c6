"""Benchmarks of the Performance Testing page: consumers, latency on a real loop, query budgets.

Run by ``make bench BENCH=testing``; writes three data files under
``docs/data/bench/testing/`` that the page renders.

* Throughput against the number of consumers, for handlers that *wait* (2 ms
  of awaited I/O each), handlers that *compute* (2 ms of CPU each), and a
  Redis Streams consumer group whose consumers wait 2 ms per entry.
* Latency percentiles of the open-loop generator on the real event loop.
* The reflection builders' time for 30 to 3,000 entries: three queries
  against N + 1, on in-process SQLite.

Honest numbers on a noisy, shared machine: one warm-up run, then the median of
several; the variants compared in a row are measured interleaved in the same
run, and the page quotes their ratio more than their absolute values.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis.asyncio as redis

from snippets.testing.performance_testing_load_generator import (
    ConsumerPool,
    open_loop_load,
)
from snippets.testing.performance_testing_query_budget import (
    ReflectionBuilder,
    ReflectionBuilderWithNPlusOne,
    diary,
)
from tests.bench import support
from tests.engines import Engine, _redis

CONSUMERS = (1, 2, 4, 8)
WORK = 0.002  # seconds per event
EVENTS = {1: 250, 2: 500, 4: 1000, 8: 2000}  # 0.5 to 4 s of handler time per run
REPEATS = 5


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    dirs: list[Path] = []
    engine: Engine = _redis(dirs).start()
    try:
        yield engine.url
    finally:
        engine.stop()
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)


def load() -> str:
    """The load average, so a reader can tell a quiet machine from a busy one."""
    one, five, _ = os.getloadavg()
    return f"Load average while measuring: {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores."


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def cpu_work(seconds: float) -> None:
    burn(seconds)


async def pool_burst(consumers: int, events: int, work) -> float:
    """Events per second for a burst of ``events`` through a pool of ``consumers``."""
    pool = ConsumerPool(consumers, work=lambda _: work(WORK))
    start = time.perf_counter()
    await asyncio.gather(*(pool.submit(i) for i in range(events)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return events / elapsed


async def redis_burst(url: str, consumers: int, events: int) -> float:
    """Events per second through one consumer group of ``consumers`` (2 ms awaited each)."""
    client = redis.from_url(url)
    stream = f"bench.{consumers}.{time.perf_counter_ns()}"
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    async with client.pipeline(transaction=False) as pipe:
        for i in range(events):
            pipe.xadd(stream, {"n": i})
        await pipe.execute()
    done = [0]

    async def consume(name: str) -> None:
        while done[0] < events:
            reply = await client.xreadgroup("g", name, {stream: ">"}, count=10, block=20)
            for _, entries in reply or []:
                for entry_id, _fields in entries:
                    await asyncio.sleep(WORK)
                    await client.xack(stream, "g", entry_id)
                    done[0] += 1

    start = time.perf_counter()
    await asyncio.gather(*(consume(f"c{n}") for n in range(consumers)))
    elapsed = time.perf_counter() - start
    await client.delete(stream)
    await client.aclose()
    return events / elapsed


def median_of(runs: list[Callable[[], float]], repeats: int) -> list[float]:
    """Warm each variant up once, then interleave ``repeats`` rounds; medians per variant."""
    for run in runs:
        run()
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for n, run in enumerate(runs):
            samples[n].append(run())
    return [statistics.median(s) for s in samples]


def consumers_table(url: str) -> None:
    rows = []
    for consumers in CONSUMERS:
        events = EVENTS[consumers]
        waiting, computing, group = median_of([
            lambda c=consumers, n=events: asyncio.run(pool_burst(c, n, asyncio.sleep)),
            lambda c=consumers, n=events: asyncio.run(pool_burst(c, n, cpu_work)),
            lambda c=consumers, n=events: asyncio.run(redis_burst(url, c, n)),
        ], repeats=3)
        rows.append([consumers, f"{waiting:,.0f}", f"{computing:,.0f}", f"{group:,.0f}"])
        print(rows[-1], flush=True)
    base = [float(rows[0][i].replace(",", "")) for i in (1, 2, 3)]
    for row in rows:
        row.append(" / ".join(f"{float(row[i].replace(',', '')) / base[i - 1]:.1f}x"
                              for i in (1, 2, 3)))
    support.write(
        "testing/performance_testing",
        columns=["Consumers", "Waiting 2 ms (events/s)", "Computing 2 ms (events/s)",
                 "Redis Streams group, waiting 2 ms (events/s)", "Speed-up vs 1 consumer"],
        rows=rows, command="make bench BENCH=testing",
        note="Bursts of 250 to 2,000 events; median of 3 interleaved runs after a "
             f"warm-up. One asyncio process throughout. {load()}")


def latency_table() -> None:
    rows = []
    for rate in (200, 1000, 2000):
        results = []
        for _ in range(3):
            async def one(rate: int = rate) -> list[float]:
                pool = ConsumerPool(8, work=lambda _: asyncio.sleep(WORK))
                result = await open_loop_load(pool.submit, rate=rate, seconds=2)
                await pool.close()
                return [result.throughput, result.ms(50), result.ms(95), result.ms(99)]
            results.append(asyncio.run(one()))
        medians = [statistics.median(column) for column in zip(*results)]
        rows.append([f"{rate:,}", f"{medians[0]:,.0f}"] + [f"{m:.2f}" for m in medians[1:]])
        print(rows[-1], flush=True)
    support.write(
        "testing/performance_testing_latency",
        columns=["Offered (events/s)", "Achieved (events/s)", "p50 (ms)", "p95 (ms)", "p99 (ms)"],
        rows=rows, command="make bench BENCH=testing",
        note="open_loop_load for 2 s on the real event loop, 8 consumers awaiting 2 ms each "
             f"(capacity 4,000 events/s); median of 3 runs. {load()}")


def queries_table() -> None:
    rows = []
    for entries in (30, 300, 3000):
        conn_good, conn_bad = diary(entries), diary(entries)
        good, bad = (ReflectionBuilder(conn_good), ReflectionBuilderWithNPlusOne(conn_bad))

        def timed(builder) -> Callable[[], float]:
            def run() -> float:  # CPU time of this process: SQLite runs in it, neighbours do not
                start = time.process_time()
                builder.build("ana", "2025-03-14")
                return (time.process_time() - start) * 1000
            return run

        t_good, t_bad = median_of([timed(good), timed(bad)], repeats=REPEATS * 3)
        rows.append([f"{entries:,}", f"{t_good:.2f}", f"{t_bad:.2f}", f"{t_bad / t_good:.1f}x",
                     f"{entries + 2 - 3:,}"])
        print(rows[-1], flush=True)
    support.write(
        "testing/performance_testing_queries",
        columns=["Entries", "3 queries (ms)", "N + 1 queries (ms)", "N + 1 / 3 queries",
                 "Extra queries"],
        rows=rows, command="make bench BENCH=testing",
        note="In-process SQLite in memory, CPU time of the process (time.process_time), median "
             f"of {REPEATS * 3} interleaved runs after a warm-up. {load()}")


def main() -> None:
    queries_table()
    latency_table()
    with private_redis() as url:
        consumers_table(url)


if __name__ == "__main__":
    main()
