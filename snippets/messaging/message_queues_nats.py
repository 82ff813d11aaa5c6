"""Competing consumers and fan-out on NATS JetStream durable pull consumers.

A topic is a subject captured by a JetStream stream (file storage); a group
is a durable pull consumer on that stream, so every group gets every message
stored after it was created, and the clients pulling from one durable
consumer share its messages. A message not acknowledged within ``lease``
seconds (the consumer's ``ack_wait``) is delivered again, with
``num_delivered`` counting the attempts. Point it at your own server with
``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

log = logging.getLogger("nats_queue")
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery: the stream sequence, the payload and JetStream's delivery count."""

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


def stream_name(topic: str) -> str:
    """JetStream stream names may not contain dots: ``coaching.entries`` -> ``COACHING_ENTRIES``."""
    return topic.replace(".", "_").replace("-", "_").upper()


class NatsBroker:
    """One file-backed stream per topic, one durable pull consumer per group.

    Args:
        client: a connected ``nats.aio.client.Client``.
        lease: the consumers' ``ack_wait`` in seconds.
    """

    def __init__(self, client: Client, *, lease: float = 30.0, max_body: int = MAX_BODY) -> None:
        self.client, self.js, self.lease, self.max_body = client, client.jetstream(), lease, max_body
        self._streams: set[str] = set()

    async def _stream(self, topic: str) -> str:
        name = stream_name(topic)
        if name not in self._streams:
            await self.js.add_stream(StreamConfig(name=name, subjects=[topic],
                                                  storage=StorageType.FILE))
            self._streams.add(name)
        return name

    # --8<-- [start:durable]
    async def subscribe(self, topic: str, group: str) -> None:
        """Create the group's durable consumer, starting after the last stored message."""
        check(topic)
        check(group)
        config = ConsumerConfig(durable_name=group, ack_policy=AckPolicy.EXPLICIT,
                                ack_wait=self.lease, deliver_policy=DeliverPolicy.NEW)
        await self.js.add_consumer(await self._stream(topic), config)
    # --8<-- [end:durable]

    async def publish(self, topic: str, body: bytes) -> int:
        """Store ``body`` in the topic's stream; return its sequence once stored."""
        check(topic, body, self.max_body)
        await self._stream(topic)
        return (await self.js.publish(topic, body)).seq

    async def publish_many(self, topic: str, bodies: list[bytes]) -> list[int]:
        """Publish several messages and wait for all their stream acks at once."""
        for body in bodies:
            check(topic, body, self.max_body)
        await self._stream(topic)
        acks = await asyncio.gather(*(self.js.publish(topic, body) for body in bodies))
        return [ack.seq for ack in acks]

    async def consumer(self, topic: str, group: str, name: str) -> NatsConsumer:
        """A client pulling from the group's durable consumer."""
        await self.subscribe(topic, group)
        pull = await self.js.pull_subscribe_bind(consumer=group, stream=stream_name(topic))
        return NatsConsumer(self.client, pull, name)

    async def close(self) -> None:
        """Drain and close the connection."""
        await self.client.close()


class NatsConsumer:
    """Fetches batches; acknowledges each message by its reply subject."""

    def __init__(self, client: Client, pull: nats.js.JetStreamContext.PullSubscription,
                 name: str) -> None:
        self.client, self.pull, self.name = client, pull, name
        self._unacked: dict[str, Msg] = {}

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Fetch up to ``max_messages``; wait at most ``timeout`` s for the first."""
        try:
            fetched = await self.pull.fetch(max_messages, timeout=timeout)
        except TimeoutError:  # nats.errors.TimeoutError is one too
            return []
        received = []
        for msg in fetched:
            meta = msg.metadata
            message_id = str(meta.sequence.stream)
            self._unacked[message_id] = msg
            received.append(Message(message_id, msg.data, meta.num_delivered))
        return received

    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge each message, then flush once so the server has every ack."""
        for message in messages:
            msg = self._unacked.pop(message.id, None)
            if msg is not None:
                await msg.ack()  # a fire-and-forget publish to the reply subject
        await self.client.flush()  # one round trip: the server has processed them

    async def close(self) -> None:
        """Stop pulling; what is unacknowledged returns after ``ack_wait``."""
        await self.pull.unsubscribe()


async def connect(url: str | None = None, *, attempts: int = 10, **options: float) -> NatsBroker:
    """Connect to ``url`` (default ``NATS_URL``), or fail clearly after ``attempts`` tries.

    Each try waits at most 2 s for the server's greeting, and tries are 0.2 s
    apart. The same bound applies to reconnecting later: after ``attempts``
    failed tries in a row the client gives up (with ``attempts=1``, it never
    reconnects).

    Raises:
        ValueError: ``attempts`` is below 1.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    url = url or os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

    async def quiet(error: Exception) -> None:  # the client reports each failed try here
        log.debug("nats: %r", error)

    # nats-py counts the tries after the first, and reads 0 as "never stop trying".
    retries = ({"max_reconnect_attempts": attempts - 1} if attempts > 1
               else {"allow_reconnect": False})
    try:
        client = await nats.connect(url, connect_timeout=2, reconnect_time_wait=0.2,
                                    error_cb=quiet, **retries)
    except (nats.errors.Error, OSError) as error:
        raise ConnectionError(
            f"cannot reach NATS at {url} after {attempts} attempts: "
            f"{str(error) or type(error).__name__}") from error
    return NatsBroker(client, **options)


async def main() -> int:
    """Six journal entries: two coaches share them, the reflection gets all six."""
    try:
        broker = await connect(lease=1.0)
    except ConnectionError as error:
        print(f"{error}\nSet NATS_URL to a NATS server with JetStream you may write to.", file=sys.stderr)
        return 1
    topic = "coaching.entries"
    try:
        await broker.js.delete_stream(stream_name(topic))  # a clean demo on a reused server
    except nats.js.errors.NotFoundError:
        pass
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
