"""A load generator, a latency histogram, and the coordinated-omission trap.

:func:`open_loop_load` sends events on a schedule (``rate`` per second)
whether or not earlier ones have been answered, as real users do, and
measures each latency from the moment the event *should* have been sent.
:class:`LatencyHistogram` keeps counts in logarithmic buckets, so memory is
fixed and any percentile (p50, p95, p99) is exact to within 1 %.

:func:`closed_loop_load` is the deliberately broken generator: it waits for
each answer before sending the next and measures from the actual send. When
the system stalls, it stops sending, so the stall hides in one sample; this
is *coordinated omission*, and ``test_a_stall_shows_up_in_the_p99`` catches
it. The tests and ``main()`` run on :class:`VirtualTimeLoop`, an event loop
whose clock jumps to the next timer: a 10-second load test runs in a blink
and prints the same figures on every machine. The same functions on the
normal loop measure real systems (this page's benchmark does).
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


# --8<-- [start:virtual_time]
class _JumpingSelector(selectors.DefaultSelector):
    """Polls without waiting; when the loop would sleep until a timer, jumps to it."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout:
            self.loop.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("deadlock: nothing is scheduled and nothing can wake the loop")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: ``asyncio.sleep(3600)`` returns at once, an hour later."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop, self.now = self, 0.0

    def time(self) -> float:
        return self.now


def run_virtual(coro: Awaitable[Any]) -> Any:
    """``asyncio.run`` on a virtual clock."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
# --8<-- [end:virtual_time]


# --8<-- [start:histogram]
class LatencyHistogram:
    """Latencies in logarithmic buckets 1 % wide: fixed memory, percentiles within 1 %."""

    def __init__(self, precision: float = 0.01, lowest: float = 1e-6) -> None:
        self._log_base, self._lowest = math.log1p(precision), lowest
        self.counts: Counter[int] = Counter()
        self.count, self.max = 0, 0.0

    def record(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"a latency must be a finite number of seconds >= 0, got {seconds!r}")
        self.counts[math.floor(math.log(max(seconds, self._lowest)) / self._log_base)] += 1
        self.count, self.max = self.count + 1, max(self.max, seconds)

    def percentile(self, p: float) -> float:
        """The smallest latency that ``p`` % of the samples do not exceed (nearest rank)."""
        if not 0 < p <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {p!r}")
        if not self.count:
            raise ValueError("no latencies recorded")
        rank, seen = math.ceil(p / 100 * self.count), 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(math.exp((bucket + 1) * self._log_base), self.max)
        raise AssertionError("unreachable: the counts add up to count")  # pragma: no cover
# --8<-- [end:histogram]


@dataclass
class LoadResult:
    sent: int
    seconds: float
    latencies: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def throughput(self) -> float:
        return self.sent / self.seconds

    def ms(self, p: float) -> float:
        return self.latencies.percentile(p) * 1000


Submit = Callable[[int], Awaitable[None]]


# --8<-- [start:generators]
async def open_loop_load(submit: Submit, *, rate: float, seconds: float) -> LoadResult:
    """Send event ``i`` at ``start + i / rate`` without waiting for answers; time from then."""
    loop = asyncio.get_running_loop()
    start, total = loop.time(), round(rate * seconds)
    result = LoadResult(total, 0.0)

    async def one(i: int, intended: float) -> None:
        await submit(i)
        result.latencies.record(loop.time() - intended)

    tasks = []
    for i in range(total):
        intended = start + i / rate
        if intended > loop.time():
            await asyncio.sleep(intended - loop.time())
        tasks.append(asyncio.create_task(one(i, intended)))
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - start
    return result


async def closed_loop_load(submit: Submit, *, rate: float, seconds: float) -> LoadResult:
    """Deliberately broken: waits for each answer, and times from the actual send."""
    loop = asyncio.get_running_loop()
    start, total = loop.time(), round(rate * seconds)
    result = LoadResult(total, 0.0)
    for i in range(total):
        intended = start + i / rate
        if intended > loop.time():
            await asyncio.sleep(intended - loop.time())
        sent = loop.time()
        await submit(i)
        result.latencies.record(loop.time() - sent)
    result.seconds = loop.time() - start
    return result
# --8<-- [end:generators]


# --8<-- [start:system]
class ConsumerPool:
    """The system under load: ``consumers`` workers sharing one queue of events.

    Each event takes its own service time (about 20 ms, seeded, with a tail);
    during ``stall`` = ``(from, to)`` no worker starts an event, as in a
    garbage-collection pause or a broker fail-over.
    """

    def __init__(self, consumers: int, *, seed: int = 1, stall: tuple[float, float] | None = None,
                 work: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.queue: asyncio.Queue[tuple[int, asyncio.Future[None]]] = asyncio.Queue()
        self.random, self.service, self.stall, self.work = random.Random(seed), {}, stall, work
        self.workers = [asyncio.create_task(self._consume()) for _ in range(consumers)]

    def service_time(self, event: int) -> float:
        while event not in self.service:  # drawn in event order, whoever asks first
            self.service[len(self.service)] = self.random.lognormvariate(math.log(0.02), 0.35)
        return self.service[event]

    async def submit(self, event: int) -> None:
        done = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((event, done))
        await done

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event, done = await self.queue.get()
            if self.stall and self.stall[0] <= loop.time() < self.stall[1]:
                await asyncio.sleep(self.stall[1] - loop.time())
            await self.work(self.service_time(event))
            done.set_result(None)

    async def close(self) -> None:
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
# --8<-- [end:system]


async def measure(load: Callable[..., Awaitable[LoadResult]], consumers: int, *, rate: float,
                  seconds: float, stall: tuple[float, float] | None = None) -> LoadResult:
    """Put ``rate`` events/s on a fresh pool of ``consumers`` for ``seconds``."""
    loop = asyncio.get_running_loop()
    pool = ConsumerPool(consumers, stall=stall and (loop.time() + stall[0], loop.time() + stall[1]))
    try:
        return await load(pool.submit, rate=rate, seconds=seconds)
    finally:
        await pool.close()


# --8<-- [start:tests]
def test_an_unloaded_system_answers_in_about_its_service_time(load=open_loop_load):
    result = run_virtual(measure(load, 4, rate=25, seconds=10))
    assert 16 < result.ms(50) < 24 and result.ms(99) < 60, f"p50 {result.ms(50):.1f} ms"


def test_throughput_follows_the_offered_rate_below_saturation(load=open_loop_load):
    result = run_virtual(measure(load, 4, rate=100, seconds=10))
    assert 97 < result.throughput <= 100, f"{result.throughput:.0f} of 100 events/s offered"


def test_a_stall_shows_up_in_the_p99(load=open_loop_load):
    # 1 s without progress in a 10 s run: 10 % of the events were sent into it.
    result = run_virtual(measure(load, 4, rate=50, seconds=10, stall=(5.0, 6.0)))
    assert result.ms(99) > 500, f"p99 {result.ms(99):.0f} ms hides a 1000 ms stall"
# --8<-- [end:tests]


TESTS = (test_an_unloaded_system_answers_in_about_its_service_time,
         test_throughput_follows_the_offered_rate_below_saturation,
         test_a_stall_shows_up_in_the_p99)


def main() -> None:
    print("200 events/s for 5 s (virtual time), service time about 20 ms per event")
    print(f"{'consumers':>9} {'events/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for consumers in (1, 2, 4, 8):
        r = run_virtual(measure(open_loop_load, consumers, rate=200, seconds=5))
        print(f"{consumers:>9} {r.throughput:>9.0f} {r.ms(50):>8.1f} {r.ms(95):>8.1f} {r.ms(99):>8.1f}")
    print("\n50 events/s for 10 s, 4 consumers, every consumer stalls from 5 s to 6 s")
    for load in (open_loop_load, closed_loop_load):
        r = run_virtual(measure(load, 4, rate=50, seconds=10, stall=(5.0, 6.0)))
        print(f"{load.__name__:<17} p50 {r.ms(50):6.1f} ms   p99 {r.ms(99):6.1f} ms   "
              f"max {r.latencies.max * 1000:6.1f} ms")
    for load in (open_loop_load, closed_loop_load):
        failed = []
        for test in TESTS:
            try:
                test(load)
            except AssertionError as failure:
                failed.append(f"{test.__name__}: {failure}")
        print(f"{load.__name__}: {len(TESTS) - len(failed)} passed"
              + "".join(f"\n  caught by {line}" for line in failed))


if __name__ == "__main__":
    main()
