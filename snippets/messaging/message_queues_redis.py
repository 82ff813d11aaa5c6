"""Competing consumers and fan-out on Redis Streams consumer groups.

A topic is a stream; a group is a Redis consumer group on it, so every group
reads every entry added after it was created, and inside a group each entry
goes to one consumer. An entry read but not acknowledged stays in the
group's pending list; after ``lease`` seconds of silence another consumer
takes it over with ``XAUTOCLAIM`` and ``XPENDING`` tells how often it was
delivered. Point it at your own Redis with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery: the stream entry id, the payload and how often it was delivered."""

    id: str
    body: bytes
    deliveries: int


def check(topic: str, body: bytes | None = None, max_body: int = MAX_BODY) -> None:
    """Refuse a malformed topic or an oversized or non-bytes body, naming the problem."""
    if not isinstance(topic, str) or not NAME.fullmatch(topic):
        raise ValueError(f"invalid name {topic!r}: use dotted lowercase words like 'coaching.entries'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"message body must be bytes, not {type(body).__name__}")
    if body is not None and len(body) > max_body:
        raise ValueError(f"message of {len(body)} bytes exceeds the {max_body}-byte limit")


class RedisBroker:
    """Streams as topics, consumer groups as groups.

    Args:
        client: a connected ``redis.asyncio.Redis``.
        lease: seconds an unacknowledged entry stays with its consumer before
            another consumer of the group may claim it.
    """

    def __init__(self, client: redis.Redis, *, lease: float = 30.0,
                 max_body: int = MAX_BODY) -> None:
        self.client, self.lease, self.max_body = client, lease, max_body

    async def subscribe(self, topic: str, group: str) -> None:
        """Create the group at the stream's end (idempotent): it gets every later entry."""
        check(topic)
        check(group)
        try:
            await self.client.xgroup_create(topic, group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def publish(self, topic: str, body: bytes) -> str:
        """Append ``body`` to the stream; return the entry id Redis assigned."""
        check(topic, body, self.max_body)
        return (await self.client.xadd(topic, {"body": body})).decode()

    async def publish_many(self, topic: str, bodies: list[bytes]) -> list[str]:
        """XADD several entries in one round trip (a pipeline, not a transaction)."""
        for body in bodies:
            check(topic, body, self.max_body)
        async with self.client.pipeline(transaction=False) as pipe:
            for body in bodies:
                pipe.xadd(topic, {"body": body})
            return [entry_id.decode() for entry_id in await pipe.execute()]

    async def consumer(self, topic: str, group: str, name: str) -> RedisConsumer:
        """A consumer named ``name`` in ``group``; Redis creates it on first read."""
        await self.subscribe(topic, group)
        return RedisConsumer(self, topic, group, name)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


class RedisConsumer:
    """Reads new entries with XREADGROUP and claims abandoned ones with XAUTOCLAIM."""

    def __init__(self, broker: RedisBroker, topic: str, group: str, name: str) -> None:
        self.broker, self.topic, self.group, self.name = broker, topic, group, name

    # --8<-- [start:claim]
    async def _claim(self, count: int) -> list[Message]:
        """Take over entries another consumer left unacknowledged for ``lease`` s."""
        idle_ms = int(self.broker.lease * 1000)
        _, entries, _ = await self.broker.client.xautoclaim(
            self.topic, self.group, self.name, idle_ms, start_id="0-0", count=count)
        if not entries:
            return []
        async with self.broker.client.pipeline(transaction=False) as pipe:
            for entry_id, _ in entries:  # one XPENDING per entry: its own delivery count
                pipe.xpending_range(self.topic, self.group, entry_id, entry_id, 1)
            pending = await pipe.execute()
        delivered = {p["message_id"]: p["times_delivered"] for rows in pending for p in rows}
        # an entry its old consumer acknowledged meanwhile is done: not handed out again
        return [Message(i.decode(), f[b"body"], delivered[i]) for i, f in entries if i in delivered]
    # --8<-- [end:claim]

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Claimed entries first, then new ones; wait at most ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            claimed = await self._claim(max_messages)
            if claimed:
                return claimed
            remaining = deadline - loop.time()  # at or past the deadline: one 1 ms read
            block = max(1, int(min(remaining, self.broker.lease / 4) * 1000))
            reply = await self.broker.client.xreadgroup(
                self.group, self.name, {self.topic: ">"}, count=max_messages, block=block)
            if reply:
                return [Message(i.decode(), f[b"body"], 1) for i, f in reply[0][1]]
            if remaining <= 0:
                return []

    async def ack(self, messages: list[Message]) -> None:
        """XACK: the entries leave the group's pending list for good."""
        if messages:
            await self.broker.client.xack(self.topic, self.group, *(m.id for m in messages))

    async def close(self) -> None:
        """Nothing to do: unacknowledged entries stay pending until claimed."""


async def connect(url: str | None = None, *, attempts: int = 3, **options: float) -> RedisBroker:
    """Connect to ``url`` (default ``REDIS_URL``), retrying a few times, then fail clearly."""
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    # No read timeout on the connection: a receive blocks in XREADGROUP for up to its own
    # timeout. Only the first PING (connecting included) has a 2 s limit.
    client = redis.from_url(url, socket_timeout=None)
    for attempt in range(1, attempts + 1):
        try:
            await asyncio.wait_for(client.ping(), 2)
            return RedisBroker(client, **options)
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            if attempt == attempts:
                await client.aclose()
                raise ConnectionError(
                    f"cannot reach Redis at {url} after {attempts} attempts: {error}") from error
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def main() -> int:
    """Six journal entries: two coaches share them, the reflection gets all six."""
    try:
        broker = await connect(lease=1.0)
    except ConnectionError as error:
        print(f"{error}\nSet REDIS_URL to a Redis you may write to.", file=sys.stderr)
        return 1
    topic = "coaching.entries"
    await broker.client.delete(topic)  # a clean demo on a reused server
    await broker.subscribe(topic, "coaches")
    await broker.subscribe(topic, "reflection")
    for n in range(1, 7):
        await broker.publish(topic, f"entry-{n}".encode())

    reflection = await broker.consumer(topic, "reflection", "evening")
    got = await reflection.receive(max_messages=10)
    await reflection.ack(got)
    print(f"reflection: {', '.join(m.body.decode() for m in got)}")

    coaches = [await broker.consumer(topic, "coaches", n) for n in ("coach-a", "coach-b")]
    handled: list[str] = []
    while len(handled) < 6:
        for coach in coaches:
            batch = await coach.receive(max_messages=2, timeout=1.0)
            handled += [m.body.decode() for m in batch]
            await coach.ack(batch)
    print(f"coaches   : {len(handled)} handled, {len(set(handled))} distinct")
    for coach in coaches:
        await coach.close()

    crashing = await broker.consumer(topic, "coaches", "coach-c")
    await broker.publish(topic, b"entry-7")
    await broker.publish(topic, b"entry-8")
    batch = await crashing.receive(max_messages=2)
    await crashing.ack(batch[:1])
    await crashing.close()  # leaves holding entry-8, unacknowledged
    survivor = await broker.consumer(topic, "coaches", "coach-d")
    again = await survivor.receive(max_messages=2, timeout=5.0)
    await survivor.ack(again)
    print(f"crash     : acked {batch[0].body.decode()}, "
          f"redelivered {[(m.body.decode(), m.deliveries) for m in again]}")
    await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
