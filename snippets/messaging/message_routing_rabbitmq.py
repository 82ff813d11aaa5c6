"""Topic routing and dead-letter routing on RabbitMQ.

Queues bind to a durable topic exchange with patterns (``*`` one word,
``#`` zero or more). Every publish is *mandatory* and confirmed, so a routing
key that no binding matches comes back as an :class:`Unroutable` error
instead of vanishing. Each queue names a dead-letter exchange: a message a
consumer rejects without requeueing moves to the dead-letter queue with an
``x-death`` header saying from which queue, why, and how many times. Point it
at your own RabbitMQ with ``AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange


class Unroutable(LookupError):
    """RabbitMQ returned the message: no queue is bound to a matching pattern."""


class RabbitRouter:
    """A topic exchange, its queues, and a dead-letter queue behind them.

    Args:
        connection: an open aio-pika connection.
        channel: a channel with publisher confirms and ``on_return_raises``.
        exchange: the topic exchange's name; the dead-letter exchange and
            queue are named after it.
    """

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel,
                 exchange: str = "coaching") -> None:
        self.connection, self.channel, self.name = connection, channel, exchange
        self.dead_letter_queue = f"{exchange}.dead-letters"
        self._exchange: AbstractExchange | None = None

    async def _declare(self) -> AbstractExchange:
        if self._exchange is None:
            dlx = await self.channel.declare_exchange(f"{self.name}.dlx",
                                                      aio_pika.ExchangeType.FANOUT, durable=True)
            dead = await self.channel.declare_queue(self.dead_letter_queue, durable=True)
            await dead.bind(dlx)
            self._exchange = await self.channel.declare_exchange(
                self.name, aio_pika.ExchangeType.TOPIC, durable=True)
        return self._exchange

    # --8<-- [start:bind]
    async def bind(self, queue: str, pattern: str) -> None:
        """Bind ``queue`` (declared with a dead-letter exchange) to ``pattern``."""
        exchange = await self._declare()
        declared = await self.channel.declare_queue(
            queue, durable=True, arguments={"x-dead-letter-exchange": f"{self.name}.dlx"})
        await declared.bind(exchange, routing_key=pattern)
    # --8<-- [end:bind]

    async def publish(self, key: str, body: bytes) -> None:
        """Publish with ``mandatory``; raise :class:`Unroutable` if RabbitMQ returns it."""
        exchange = await self._declare()
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await exchange.publish(message, routing_key=key, mandatory=True)
        except aio_pika.exceptions.DeliveryError as error:
            raise Unroutable(f"no queue is bound to a pattern matching {key!r}") from error

    async def drain(self, queue: str) -> list[bytes]:
        """Take and acknowledge everything waiting in ``queue``."""
        declared = await self.channel.get_queue(queue)
        bodies = []
        while (message := await declared.get(fail=False, timeout=5)) is not None:
            await message.ack()
            bodies.append(message.body)
        return bodies

    async def reject_next(self, queue: str) -> bytes | None:
        """Reject the next message of ``queue`` without requeue: it is dead-lettered."""
        message = await (await self.channel.get_queue(queue)).get(fail=False, timeout=5)
        if message is None:
            return None
        await message.reject(requeue=False)
        return message.body

    async def dead_letters(self) -> list[tuple[bytes, list[dict[str, Any]]]]:
        """Take every dead letter with its ``x-death`` records."""
        declared = await self.channel.get_queue(self.dead_letter_queue)
        letters = []
        while (message := await declared.get(fail=False, timeout=5)) is not None:
            await message.ack()
            letters.append((message.body, list(message.headers.get("x-death", []))))
        return letters

    async def close(self) -> None:
        await self.connection.close()


async def connect(url: str | None = None, exchange: str = "coaching") -> RabbitRouter:
    """Connect to ``url`` (default ``AMQP_URL``) with a confirming, returning channel."""
    url = url or os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError) as error:
        raise ConnectionError(f"cannot reach RabbitMQ at {url}: {error}") from error
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    return RabbitRouter(connection, channel, exchange)


async def main() -> int:
    """The in-memory routing demo's bindings, on a real topic exchange."""
    try:
        router = await connect(exchange=f"coaching-{os.getpid()}")
    except ConnectionError as error:
        print(f"{error}\nSet AMQP_URL to a RabbitMQ you may write to.", file=sys.stderr)
        return 1
    queues = {"goal-coach": "coaching.goals.*", "mood-agent": "coaching.entries.*",
              "audit": "coaching.#"}
    for queue, pattern in queues.items():
        await router.channel.queue_delete(f"demo.{queue}")  # a clean demo on a reused server
        await router.bind(f"demo.{queue}", pattern)
    for key in ("coaching.entries.created", "coaching.goals.set", "coaching.goals.set.v2"):
        await router.publish(key, key.encode())
    try:
        await router.publish("billing.invoice.paid", b"?")
    except Unroutable as error:
        print(f"{'billing.invoice.paid':<25} -> {error}")
    for queue in sorted(queues):
        print(f"{queue:<10} got {[b.decode() for b in await router.drain(f'demo.{queue}')]}")

    await router.publish("coaching.entries.created", b"entry-\x00corrupt")
    rejected = await router.reject_next("demo.mood-agent")
    await router.drain("demo.audit")
    [(body, deaths)] = await router.dead_letters()
    death = deaths[0]
    print(f"rejected {rejected!r}; dead letter {body!r} from {death['queue']!r}, "
          f"reason {death['reason']!r}, count {death['count']}")
    await router.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
