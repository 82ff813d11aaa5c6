"""Competing consumers and fan-out on RabbitMQ exchanges and queues.

A topic is a durable fanout exchange; a group is a durable queue bound to
it, so every group gets a copy of every later message and the consumers of
one queue share its messages. Messages are persistent and every publish
waits for the broker's confirm; a message that no queue takes (no group
subscribed, or a binding lost in a broker crash) comes back and raises
``UnroutableError`` instead of vanishing. A consumer holds at most ``prefetch``
unacknowledged messages; when its channel or connection closes, or its
process dies, RabbitMQ puts them back at once and marks them redelivered.
Point it at your own RabbitMQ with ``AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.abc import DeliveredMessage

NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery: its delivery tag, the payload and a delivery count.

    Classic queues only say *redelivered*, so ``deliveries`` is 1 or 2 (meaning
    "at least 2"); quorum queues count exactly in ``x-delivery-count``.
    """

    id: str
    body: bytes
    deliveries: int


class UnroutableError(RuntimeError):
    """RabbitMQ returned a published message: no queue was bound to its topic, so
    no copy was stored. Subscribe the group (again) and publish it again."""


def check(topic: str, body: bytes | None = None, max_body: int = MAX_BODY) -> None:
    """Refuse a malformed topic or an oversized or non-bytes body, naming the problem."""
    if not isinstance(topic, str) or not NAME.fullmatch(topic):
        raise ValueError(f"invalid name {topic!r}: use dotted lowercase words like 'coaching.entries'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"message body must be bytes, not {type(body).__name__}")
    if body is not None and len(body) > max_body:
        raise ValueError(f"message of {len(body)} bytes exceeds the {max_body}-byte limit")


class RabbitBroker:
    """Fanout exchanges as topics, one durable queue per group.

    Args:
        connection: an open aio-pika connection.
        channel: a channel with publisher confirms (aio-pika's default).
        prefetch: unacknowledged messages RabbitMQ may push to one consumer.
    """

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel, *,
                 prefetch: int = 100, max_body: int = MAX_BODY) -> None:
        self.connection, self.channel = connection, channel
        self.prefetch, self.max_body = prefetch, max_body
        self._exchanges: dict[str, AbstractExchange] = {}

    async def _exchange(self, topic: str) -> AbstractExchange:
        if topic not in self._exchanges:
            self._exchanges[topic] = await self.channel.declare_exchange(
                topic, aio_pika.ExchangeType.FANOUT, durable=True)
        return self._exchanges[topic]

    async def subscribe(self, topic: str, group: str) -> None:
        """Declare the group's durable queue and bind it (idempotent)."""
        check(topic)
        check(group)
        queue = await self.channel.declare_queue(f"{topic}.{group}", durable=True)
        await queue.bind(await self._exchange(topic))

    async def publish(self, topic: str, body: bytes) -> None:
        """Publish a persistent message and wait until RabbitMQ confirms it is stored.

        Raises ``UnroutableError`` when no queue is bound to the topic: nothing was stored.
        """
        check(topic, body, self.max_body)
        await self._send(await self._exchange(topic), topic, body)

    async def publish_many(self, topic: str, bodies: list[bytes]) -> None:
        """Publish several persistent messages and wait for all their confirms at once."""
        for body in bodies:
            check(topic, body, self.max_body)
        exchange = await self._exchange(topic)
        await asyncio.gather(*(self._send(exchange, topic, body) for body in bodies))

    @staticmethod
    async def _send(exchange: AbstractExchange, topic: str, body: bytes) -> None:
        # mandatory: a message no queue takes comes back (basic.return) before its
        # confirm; without it RabbitMQ confirms the message and drops it.
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        if isinstance(await exchange.publish(message, routing_key="", mandatory=True),
                      DeliveredMessage):
            raise UnroutableError(
                f"RabbitMQ stored no copy: no queue is bound to topic {topic!r}; "
                "subscribe a group (again: a crash can lose a binding) and publish again")

    async def consumer(self, topic: str, group: str, name: str) -> RabbitConsumer:
        """A consumer on its own channel, competing on the group's queue."""
        await self.subscribe(topic, group)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.get_queue(f"{topic}.{group}")
        consumer = RabbitConsumer(channel, name)
        consumer.tag = await queue.consume(consumer._arrived, consumer_tag=name)
        return consumer

    async def close(self) -> None:
        """Close the connection; consumers' unacknowledged messages are requeued."""
        await self.connection.close()


class RabbitConsumer:
    """Buffers what RabbitMQ pushes (at most ``prefetch``) and hands it out in batches."""

    def __init__(self, channel: AbstractChannel, name: str, linger: float = 0.005) -> None:
        self.channel, self.name, self.linger, self.tag = channel, name, linger, ""
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._unacked: dict[str, AbstractIncomingMessage] = {}

    async def _arrived(self, message: AbstractIncomingMessage) -> None:
        await self._buffer.put(message)

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Wait at most ``timeout`` s for a first message, then ``linger`` s for more."""
        taken: list[AbstractIncomingMessage] = []
        wait = timeout
        while len(taken) < max_messages:
            try:
                taken.append(self._buffer.get_nowait())
            except asyncio.QueueEmpty:
                try:
                    taken.append(await asyncio.wait_for(self._buffer.get(), wait))
                except TimeoutError:
                    break
            wait = self.linger  # a message is in hand: wait only briefly for more
        for incoming in taken:
            self._unacked[str(incoming.delivery_tag)] = incoming
        return [Message(str(i.delivery_tag), i.body, 2 if i.redelivered else 1) for i in taken]

    # --8<-- [start:settle]
    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge the messages; unknown or already acked ones are skipped.

        When the batch holds every unacknowledged delivery up to its newest one
        (the usual case: batches settled in the order they came), a single
        ``basic.ack`` with ``multiple=True`` settles them all: one frame, not one
        per message. Otherwise each is acknowledged on its own, so a message
        still being worked on is never settled by accident.
        """
        tags = sorted(int(m.id) for m in messages if m.id in self._unacked)
        if not tags:
            return
        newest, batch = tags[-1], {str(tag) for tag in tags}
        if all(int(tag) > newest for tag in self._unacked.keys() - batch):
            incoming = self._unacked[str(newest)]
            for tag in batch:
                del self._unacked[tag]
            await incoming.ack(multiple=True)
            return
        for tag in tags:
            await self._unacked.pop(str(tag)).ack()

    async def close(self) -> None:
        """Close the channel: RabbitMQ requeues everything not acknowledged."""
        await self.channel.close()
    # --8<-- [end:settle]


async def connect(url: str | None = None, *, attempts: int = 3, **options: int) -> RabbitBroker:
    """Connect to ``url`` (default ``AMQP_URL``), retrying a few times, then fail clearly.

    Raises:
        ValueError: ``attempts`` is below 1.
        ConnectionError: no server answered in ``attempts`` tries (5 s each at most).
    """
    url = url or os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            connection = await aio_pika.connect(url, timeout=5)
            return RabbitBroker(connection, await connection.channel(), **options)
        except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError) as error:
            if attempt == attempts:
                raise ConnectionError(
                    f"cannot reach RabbitMQ at {url} after {attempts} attempts: {error}") from error
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def main() -> int:
    """Six journal entries: two coaches share them, the reflection gets all six."""
    try:
        broker = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet AMQP_URL to a RabbitMQ you may write to.", file=sys.stderr)
        return 1
    topic = "coaching.entries"
    for group in ("coaches", "reflection"):
        await broker.channel.queue_delete(f"{topic}.{group}")  # a clean demo on a reused server
        await broker.subscribe(topic, group)
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
