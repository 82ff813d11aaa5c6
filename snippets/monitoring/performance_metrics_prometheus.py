"""Consumer metrics with prometheus-client: throughput, latency, lag, depth, duplicates.

The metrics an event consumer needs, and the type each one must have:

* counters only go up: events consumed by outcome (``handled``, ``failed``,
  ``duplicate``) and dead letters by reason; Prometheus turns them into
  rates, so a restart does not lose them;
* histograms for durations: processing time, and the event's *age* when it
  was handled (publish to handled), which is what a user feels;
* gauges for levels: queue depth (read at scrape time) and the timestamp of
  the oldest dead letter still waiting. Consumer lag on a real broker is a
  gauge too: see the Redis Streams and JetStream modules on the same page.

The clock is injectable so the output is reproducible; in production it is
``time.monotonic`` for durations and ``time.time`` for ages.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Up to four hours: an age above the last bucket only counts as "more than that", and a
# percentile can then say no more than the last bound.
AGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


@dataclass(frozen=True, slots=True)
class Event:
    """A delivered event: its id, type, when it was published, and its data."""

    id: str
    type: str
    published_at: float
    data: Mapping[str, object]


# --8<-- [start:metrics]
class ConsumerMetrics:
    """The metric families of one service, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("coaching_events_consumed", "Events taken by a consumer",
                                ["consumer", "outcome"], registry=registry)
        self.processing = Histogram("coaching_event_processing_seconds", "Handler run time",
                                    ["consumer"], buckets=LATENCY_BUCKETS, registry=registry)
        self.age = Histogram("coaching_event_age_seconds", "Publish-to-handled delay",
                             ["consumer"], buckets=AGE_BUCKETS, registry=registry)
        self.depth = Gauge("coaching_queue_depth_messages", "Messages waiting in a queue",
                           ["queue"], registry=registry)
        self.dead_letters = Counter("coaching_dead_letters", "Messages dead-lettered",
                                    ["consumer", "reason"], registry=registry)
        self.oldest_dead = Gauge("coaching_dead_letters_oldest_waiting_timestamp_seconds",
                                 "When the oldest dead letter still waiting died",
                                 registry=registry)
# --8<-- [end:metrics]


# --8<-- [start:consumer]
class InstrumentedConsumer:
    """Wraps a handler: drops duplicates by id, times it, counts every outcome.

    A copy that arrives while the same id is being handled waits for that
    outcome: it is a duplicate if the first one succeeded, handled if it failed.
    """

    def __init__(self, name: str, handler: Callable[[Event], Awaitable[None]],
                 metrics: ConsumerMetrics, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, remember: int = 10_000) -> None:
        self.name, self.handler, self.m = name, handler, metrics
        self.clock, self.wall, self.remember = clock, wall, remember
        self._seen: OrderedDict[str, None] = OrderedDict()  # bounded: the last ids only
        self._in_flight: dict[str, asyncio.Event] = {}      # ids being handled right now
        for outcome in ("handled", "failed", "duplicate"):  # export zeros, not absences
            metrics.consumed.labels(name, outcome)

    async def __call__(self, event: Event) -> str:
        while event.id in self._in_flight:  # a copy is being handled: wait for its outcome
            await self._in_flight[event.id].wait()
        if event.id in self._seen:
            self.m.consumed.labels(self.name, "duplicate").inc()
            return "duplicate"
        done = self._in_flight[event.id] = asyncio.Event()
        start = self.clock()
        try:
            await self.handler(event)
        except Exception:  # noqa: BLE001 - any handler failure is an outcome to count
            outcome = "failed"
        else:
            outcome = "handled"
            self._seen[event.id] = None
            if len(self._seen) > self.remember:
                self._seen.popitem(last=False)
        finally:
            del self._in_flight[event.id]
            done.set()
            self.m.processing.labels(self.name).observe(self.clock() - start)
        self.m.consumed.labels(self.name, outcome).inc()
        if outcome == "handled":
            self.m.age.labels(self.name).observe(max(0.0, self.wall() - event.published_at))
        return outcome
# --8<-- [end:consumer]


def scrape(url: str) -> str:
    """GET the exposition text, as Prometheus does every scrape interval."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


class FakeClock:
    """A clock the demo advances by hand, so durations and ages are exact."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def main() -> None:
    """An evening burst of journal entries, scraped over HTTP halfway through."""
    prometheus_client.disable_created_metrics()  # no *_created timestamps in the output
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    clock = FakeClock(1_000.0)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    metrics.depth.labels("coaching.entries").set_function(queue.qsize)  # read at scrape time

    async def mood_agent(event: Event) -> None:
        clock.now += event.data["model_seconds"]  # type: ignore[operator]
        if event.data.get("broken"):
            raise ValueError("entry has no text")

    consumer = InstrumentedConsumer("mood-agent", mood_agent, metrics, clock=clock, wall=clock)
    costs = {1: 2**-8, 2: 2**-7, 3: 2**-6, 4: 2**-5, 5: 2**-5, 6: 2**-4, 7: 2**-2, 8: 0.5, 9: 1.5}
    order = [1, 2, 3, 3, 4, 5, 0, 6, 7, 7, 8, 9]  # 3 and 7 redelivered (lost acks); 0 broken
    for n in order:
        data = {"model_seconds": costs.get(n, 2**-9), "broken": n == 0}
        queue.put_nowait(Event(f"e-{n}", "EntryWritten", 999.5, data))

    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        for _ in range(8):  # Prometheus scrapes while the burst is being handled
            if await consumer(queue.get_nowait()) == "failed":
                metrics.dead_letters.labels("mood-agent", "poison").inc()
                metrics.oldest_dead.set(clock.now)
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        print(await asyncio.to_thread(scrape, url), end="")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    while not queue.empty():
        await consumer(queue.get_nowait())
    count = {o: registry.get_sample_value("coaching_events_consumed_total",
                                          {"consumer": "mood-agent", "outcome": o})
             for o in ("handled", "failed", "duplicate")}
    total = sum(count.values())  # type: ignore[arg-type]
    print(f"# after the burst: depth {queue.qsize()}, {count['handled']:.0f} handled, "
          f"duplicate rate {count['duplicate']:.0f}/{total:.0f} = {count['duplicate'] / total:.0%}")


if __name__ == "__main__":
    asyncio.run(main())
