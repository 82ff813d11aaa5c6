"""Dead letters on RabbitMQ: a dead-letter exchange, and what its ``x-death`` header says.

The work queue is a quorum queue with ``x-delivery-limit`` and a dead-letter
exchange. The consumer never builds dead letters itself:

* a transient failure is ``nack``-ed back onto the queue; the broker counts
  the deliveries and, past the limit, dead-letters the message with reason
  ``delivery_limit``;
* a permanent failure (:class:`PermanentError`) is rejected without requeue
  and dead-lettered at once with reason ``rejected``.

The broker keeps the original headers and body untouched and adds an
``x-death`` entry: the reason, the queue, the original exchange and routing
keys, and a count. It does not carry the exception: log it with the
message id (see the Event Tracking page) if you need it next to the letter.
Point it at your own RabbitMQ with ``AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class PermanentError(Exception):
    """The message can never succeed as it is: reject it, do not requeue it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message as the broker describes it."""

    message_id: str | None
    reason: str
    count: int
    queue: str
    exchange: str
    routing_keys: list[str]
    attempts: int | None
    headers: dict[str, Any]
    body: bytes


# --8<-- [start:topology]
async def declare(channel: AbstractChannel, name: str, *,
                  delivery_limit: int = 3) -> tuple[AbstractQueue, AbstractQueue]:
    """Declare ``name`` (a quorum queue that dead-letters) and ``name.dlq``; return both."""
    dlx = await channel.declare_exchange(f"{name}.dlx", aio_pika.ExchangeType.DIRECT,
                                         durable=True)
    dlq = await channel.declare_queue(f"{name}.dlq", durable=True)
    await dlq.bind(dlx, routing_key=name)
    work = await channel.declare_queue(name, durable=True, arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,   # deliveries beyond the first, then dead-letter
        "x-dead-letter-exchange": f"{name}.dlx",
        "x-dead-letter-routing-key": name,
    })
    return work, dlq
# --8<-- [end:topology]


async def guarded(message: AbstractIncomingMessage,
                  handler: Callable[[bytes], Awaitable[None]]) -> str:
    """Handle one delivery: ack, nack for another try, or reject for good."""
    try:
        await handler(message.body)
    except PermanentError:
        await message.reject(requeue=False)  # dead-lettered now, reason "rejected"
        return "rejected"
    except Exception:
        await message.nack(requeue=True)  # the broker counts it towards the limit
        return "retry"
    await message.ack()
    return "handled"


# --8<-- [start:parse]
def parse(message: AbstractIncomingMessage, delivery_limit: int | None = None) -> DeadLetter:
    """Read the most recent ``x-death`` entry and split it from the original headers.

    The broker does not say how many deliveries a message had; for reason
    ``delivery_limit`` it is the queue's limit plus the first delivery.
    """
    headers = dict(message.headers or {})
    deaths = headers.pop("x-death", None) or [{}]
    death = deaths[0]  # the newest death comes first
    for key in [k for k in headers if k.startswith(("x-first-death", "x-last-death"))]:
        headers.pop(key)
    reason = str(death.get("reason", "unknown"))
    limited = reason == "delivery_limit" and delivery_limit is not None
    return DeadLetter(
        message_id=message.message_id, reason=reason,
        count=int(death.get("count", 0)), queue=str(death.get("queue", "")),
        exchange=str(death.get("exchange", "")),
        routing_keys=[str(k) for k in death.get("routing-keys", [])],
        attempts=delivery_limit + 1 if limited else None, headers=headers, body=message.body)
# --8<-- [end:parse]


async def collect(dlq: AbstractQueue, count: int, *, delivery_limit: int | None = None,
                  timeout: float = 10.0) -> list[DeadLetter]:
    """Take ``count`` dead letters off ``dlq`` (acknowledging them), or fail after ``timeout``."""
    letters: list[DeadLetter] = []

    async def take() -> None:
        async with dlq.iterator() as messages:
            async for message in messages:
                letters.append(parse(message, delivery_limit))
                await message.ack()
                if len(letters) == count:
                    return

    await asyncio.wait_for(take(), timeout)
    return letters


async def main() -> None:
    """Three journal entries: one fine, one the model never answers, one malformed."""
    url = os.environ.get("AMQP_URL", DEFAULT_URL)
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
        print(f"No RabbitMQ at {url}: set AMQP_URL ({error})", file=sys.stderr)
        return
    async with connection:
        channel = await connection.channel()
        work, dlq = await declare(channel, "demo.entries.mood")
        await work.purge()
        await dlq.purge()

        async def mood_agent(body: bytes) -> None:
            if body == b"not json":
                raise PermanentError("body is not JSON")
            if body == b'{"entry": 2}':
                raise TimeoutError("model endpoint did not answer")

        async def on_message(message: AbstractIncomingMessage) -> None:
            await guarded(message, mood_agent)

        tag = await work.consume(on_message)
        for n, body in enumerate([b'{"entry": 1}', b'{"entry": 2}', b"not json"], start=1):
            await channel.default_exchange.publish(aio_pika.Message(
                body, message_id=f"m-{n}", headers={"correlation_id": f"req-{n}"}),
                routing_key=work.name)
        letters = sorted(await collect(dlq, 2, delivery_limit=3), key=lambda d: d.message_id or "")
        await work.cancel(tag)
        for d in letters:
            print(f"{d.message_id}: reason={d.reason} count={d.count} attempts={d.attempts} "
                  f"queue={d.queue} routing_keys={d.routing_keys} headers={d.headers}")


if __name__ == "__main__":
    asyncio.run(main())
