"""Consumer-group lag and pending entries from Redis Streams, exported as Prometheus gauges.

Two numbers tell how far behind a consumer group is, and they answer
different questions:

* **lag** (``XINFO GROUPS``, Redis 7+): entries added to the stream that the
  group has not read yet. It grows when consumers are too slow or stopped.
* **pending** (``XPENDING``): entries read but not acknowledged. It grows when
  consumers crash or fail, and its oldest entry's idle time says how long
  the worst one has been stuck.

Redis reports lag as nil when it cannot compute it (after entries in the
unread range were deleted); the gauge is then NaN rather than a made-up 0.
Per-consumer series are removed when a consumer leaves the group, so a
dashboard never shows the pending count of a worker that no longer exists.
Point it at your own Redis with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from dataclasses import dataclass

import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError


@dataclass(frozen=True, slots=True)
class GroupLag:
    """How far one consumer group is behind its stream."""

    stream: str
    group: str
    length: int
    lag: int | None
    pending: int
    pending_by_consumer: dict[str, int]
    oldest_pending_idle_ms: int | None


# --8<-- [start:read]
async def read_lag(client: redis.Redis, stream: str, group: str) -> GroupLag:
    """Ask Redis for the group's lag, its pending entries, and the oldest one's idle time."""
    groups = {g["name"]: g for g in await client.xinfo_groups(stream)}
    if group not in groups:
        raise LookupError(f"stream {stream!r} has no consumer group {group!r}")
    info = groups[group]
    summary = await client.xpending(stream, group)
    oldest = await client.xpending_range(stream, group, min="-", max="+", count=1)
    return GroupLag(
        stream=stream, group=group, length=await client.xlen(stream),
        lag=info.get("lag"), pending=summary["pending"],
        pending_by_consumer={c["name"]: int(c["pending"]) for c in summary["consumers"]},
        oldest_pending_idle_ms=oldest[0]["time_since_delivered"] if oldest else None)
# --8<-- [end:read]


class LagGauges:
    """Prometheus gauges kept in step with :func:`read_lag` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["stream", "group"]
        self.lag = Gauge("coaching_consumer_lag_messages", "Entries the group has not read",
                         labels, registry=registry)
        self.pending = Gauge("coaching_consumer_pending_messages",
                             "Entries read but not acknowledged", labels, registry=registry)
        self.by_consumer = Gauge("coaching_consumer_pending_by_consumer_messages",
                                 "Unacknowledged entries per consumer", [*labels, "consumer"],
                                 registry=registry)
        self.idle = Gauge("coaching_consumer_oldest_pending_idle_seconds",
                          "Idle time of the oldest unacknowledged entry", labels, registry=registry)
        self._consumers: dict[tuple[str, str], set[str]] = {}

    def update(self, sample: GroupLag) -> None:
        """Set every gauge from one sample; drop series of consumers that left."""
        key = (sample.stream, sample.group)
        self.lag.labels(*key).set(math.nan if sample.lag is None else sample.lag)
        self.pending.labels(*key).set(sample.pending)
        idle = sample.oldest_pending_idle_ms
        self.idle.labels(*key).set(0.0 if idle is None else idle / 1000)
        for gone in self._consumers.get(key, set()) - set(sample.pending_by_consumer):
            self.by_consumer.remove(*key, gone)
        for consumer, count in sample.pending_by_consumer.items():
            self.by_consumer.labels(*key, consumer).set(count)
        self._consumers[key] = set(sample.pending_by_consumer)


async def main() -> None:
    """Ten entries; two workers read six and acknowledge two: lag 4, pending 4."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as error:
        print(f"No Redis at {url}: set REDIS_URL ({error})", file=sys.stderr)
        await client.aclose()
        return
    stream, group = "demo.coaching.lag", "mood-agent"
    await client.delete(stream)
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    for n in range(1, 11):
        await client.xadd(stream, {"message_id": f"m-{n}"})
    for worker, count, acks in (("w1", 4, 2), ("w2", 2, 0)):
        [(_, entries)] = await client.xreadgroup(group, worker, {stream: ">"}, count=count)
        for entry_id, _ in entries[:acks]:
            await client.xack(stream, group, entry_id)
    sample = await read_lag(client, stream, group)
    print(f"length={sample.length} lag={sample.lag} pending={sample.pending} "
          f"by consumer={sample.pending_by_consumer}")
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    text = generate_latest(registry).decode()
    print("\n".join(line for line in text.splitlines() if not line.startswith("#")
                    and "idle" not in line))  # the idle time differs on every run
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
