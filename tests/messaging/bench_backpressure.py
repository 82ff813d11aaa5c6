"""A queue flattening a burst for a slow consumer, measured with asyncio and real time.

A producer offers 1,000 messages in 0.25 s (4,000 a second, in ticks of
10 ms); one consumer handles each in about 1 ms (``asyncio.sleep(0.001)``,
which with the event loop's overhead makes several hundred a second). The
burst therefore arrives several times faster than it can be handled. Measured per configuration of
``BoundedQueue`` from ``snippets/messaging/backpressure_overflow.py``:

* how many messages were handled, dropped or refused, the peak backlog, the
  wait of each handled message (p50, p99), when the producer finished and
  when the last message was handled;
* for a queue large enough to take the whole burst, offered and handled
  rates in 200 ms windows: the input spikes, the output stays flat.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from snippets.messaging.backpressure_overflow import BoundedQueue, Overloaded, Policy
from tests.bench import support

BURST, TICK, PER_TICK = 1_000, 0.010, 40  # 40 messages every 10 ms: 4,000/s for 0.25 s
SERVICE = 0.001  # seconds of work per message
WINDOW = 0.200


async def measure(policy: Policy, capacity: int, spill: Path | None = None) -> dict:
    queue = BoundedQueue(capacity, policy, spill_path=spill)
    offered: list[float] = []
    handled: list[tuple[float, float]] = []  # (offered at, handled at)
    peak = refused = 0
    start = time.perf_counter()
    done_producing = asyncio.Event()

    async def produce() -> None:
        nonlocal peak, refused
        for n in range(BURST):
            if n and n % PER_TICK == 0:
                await asyncio.sleep(max(0.0, start + TICK * (n // PER_TICK) - time.perf_counter()))
            now = time.perf_counter() - start
            offered.append(now)
            try:
                await queue.put(repr(now).encode())
            except Overloaded:
                refused += 1
            peak = max(peak, len(queue))
        done_producing.set()

    async def consume() -> None:
        while not (done_producing.is_set() and len(queue) == 0):
            try:
                async with asyncio.timeout(0.05):
                    body = await queue.get()
            except TimeoutError:
                continue
            await asyncio.sleep(SERVICE)
            handled.append((float(body), time.perf_counter() - start))

    producer = asyncio.create_task(produce())
    await asyncio.gather(producer, consume())
    produced_at = offered[-1]
    queue.close()
    waits = sorted((h - o) * 1000 for o, h in handled)
    return {"offered": offered, "handled": handled, "refused": refused,
            "dropped": queue.dropped, "peak": peak, "waits": waits,
            "producer_ms": produced_at * 1000, "done_ms": handled[-1][1] * 1000}


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    rows = []
    configs = [("big enough (block)", Policy.BLOCK, 10_000),
               ("block", Policy.BLOCK, 100), ("drop-newest", Policy.DROP_NEWEST, 100),
               ("drop-oldest", Policy.DROP_OLDEST, 100), ("shed", Policy.SHED, 100),
               ("spill to SQLite", Policy.SPILL, 100), ("almost none (shed)", Policy.SHED, 1)]
    series = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, policy, capacity in configs:
            spill = Path(tmp, f"{policy.value}.db") if policy is Policy.SPILL else None
            r = asyncio.run(measure(policy, capacity, spill))
            if series is None:
                series = r
            lost = r["dropped"] + r["refused"]
            waits = f"{statistics.median(r['waits']):.0f} / {percentile(r['waits'], 0.99):.0f}"
            rows.append([f"{label}, {capacity:,}", f"{len(r['handled']):,}", f"{lost:,}",
                         f"{r['peak']:,}", waits, f"{r['producer_ms']:.0f}",
                         f"{r['done_ms']:.0f}"])
            print(rows[-1], flush=True)
    note = (f"{BURST:,} messages offered at {PER_TICK / TICK:,.0f}/s (ticks of {TICK * 1000:.0f} ms); "
            f"one consumer, {SERVICE * 1000:.0f} ms of asyncio.sleep per message. Lost = dropped "
            "by the queue or refused with Overloaded. Waits from offer to handled.")
    support.write("messaging/backpressure_policies",
                  columns=["Policy, capacity", "Handled", "Lost", "Peak backlog",
                           "Wait p50 / p99 (ms)", "Producer done (ms)", "All handled (ms)"],
                  rows=rows, command="make bench BENCH=backpressure", note=note)

    windows = []
    end = series["done_ms"] / 1000
    w = 0.0
    while w < end:
        offered = sum(w <= t < w + WINDOW for t in series["offered"])
        handled = sum(w <= h < w + WINDOW for _, h in series["handled"])
        backlog = sum(t < w + WINDOW for t in series["offered"]) - sum(
            h < w + WINDOW for _, h in series["handled"])
        windows.append([f"{w * 1000:.0f}-{(w + WINDOW) * 1000:.0f}", f"{offered / WINDOW:,.0f}",
                        f"{handled / WINDOW:,.0f}", f"{backlog:,}"])
        w += WINDOW
    path = support.write("messaging/backpressure_burst",
                         columns=["Window (ms)", "Offered (msg/s)", "Handled (msg/s)",
                                  "Backlog at window end"],
                         rows=windows, command="make bench BENCH=backpressure",
                         note="The row 'big enough (block)' of the policies table, in windows "
                              f"of {WINDOW * 1000:.0f} ms.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
