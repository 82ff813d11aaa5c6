"""Message TTL, per-message expiration and queue TTL on RabbitMQ, with dead-lettering.

A queue declared with ``x-message-ttl`` discards a message that waited longer
than that many milliseconds; with ``x-dead-letter-exchange`` the message is
moved to a dead-letter queue instead, its ``x-death`` header saying
``reason: expired``. A message can also carry its own ``expiration``, but a
classic queue only checks it when the message reaches the head: an expired
message behind a long-lived one waits. ``x-expires`` deletes the queue
itself after it has been unused (no consumer, no get, no redeclare) for that
long. A queue keeps nothing after delivery, so there is no replay: what
expired survives only in the dead-letter queue. Point it at your own
RabbitMQ with ``AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection


# --8<-- [start:declare]
async def declare_expiring(channel: AbstractChannel, queue: str, ttl_ms: int | None) -> str:
    """Declare ``queue`` whose messages expire after ``ttl_ms`` into ``<queue>.expired``."""
    if ttl_ms is not None and ttl_ms < 0:
        raise ValueError(f"ttl_ms must be >= 0, not {ttl_ms}")
    dlx = await channel.declare_exchange(f"{queue}.dlx", aio_pika.ExchangeType.FANOUT,
                                         durable=True)
    expired = await channel.declare_queue(f"{queue}.expired", durable=True)
    await expired.bind(dlx)
    arguments = {"x-dead-letter-exchange": dlx.name}
    if ttl_ms is not None:
        arguments["x-message-ttl"] = ttl_ms
    await channel.declare_queue(queue, durable=True, arguments=arguments)
    return expired.name


async def publish(channel: AbstractChannel, queue: str, body: bytes,
                  expiration_s: float | None = None) -> None:
    """Publish a persistent message, optionally with its own ``expiration``."""
    message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                               expiration=expiration_s)
    await channel.default_exchange.publish(message, routing_key=queue)
# --8<-- [end:declare]


async def take(channel: AbstractChannel, queue: str) -> list[tuple[bytes, str | None]]:
    """Get and acknowledge all waiting messages, with the ``x-death`` reason if any."""
    declared = await channel.get_queue(queue)
    taken = []
    while (message := await declared.get(fail=False, timeout=5)) is not None:
        await message.ack()
        deaths = message.headers.get("x-death") or [{}]
        taken.append((message.body, deaths[0].get("reason")))
    return taken


async def exists(connection: AbstractConnection, queue: str) -> bool:
    """Whether ``queue`` exists (a passive declare; a missing queue closes its channel)."""
    async with await connection.channel() as probe:
        try:
            await probe.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
    return True


async def until(check, timeout: float = 10.0, every: float = 0.05) -> None:
    """Poll the async ``check`` every ``every`` s until it is true; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"not true after {timeout} s: {check.__name__}")
        await asyncio.sleep(every)


async def connect(url: str | None = None) -> AbstractConnection:
    """Connect to ``url`` (default ``AMQP_URL``) or raise ``ConnectionError`` saying where."""
    url = url or os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        return await aio_pika.connect(url, timeout=5)
    except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError) as error:
        raise ConnectionError(f"cannot reach RabbitMQ at {url}: {error}") from error


async def main() -> int:
    """Reminders that expire unread, one stuck behind another, and a queue that expires."""
    try:
        connection = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet AMQP_URL to a RabbitMQ you may write to.", file=sys.stderr)
        return 1
    channel = await connection.channel()
    queue = "coaching.reminders"
    for name in (queue, f"{queue}.expired", "coaching.head-of-line",
                 "coaching.head-of-line.expired"):
        await channel.queue_delete(name)  # a clean demo on a reused server
    dead = await declare_expiring(channel, queue, ttl_ms=200)
    for n in range(1, 4):
        await publish(channel, queue, f"write tonight's reflection ({n})".encode())

    async def all_expired() -> bool:
        return (await channel.declare_queue(dead, passive=True)).declaration_result.message_count == 3

    await until(all_expired)
    letters = await take(channel, dead)
    print(f"x-message-ttl 200 ms: 3 reminders unread; {len(letters)} dead-lettered, "
          f"reason {sorted({reason for _, reason in letters})}")

    line = "coaching.head-of-line"
    dead = await declare_expiring(channel, line, ttl_ms=None)
    await publish(channel, line, b"weekly summary", expiration_s=60)
    await publish(channel, line, b"nudge", expiration_s=0.1)
    await publish(channel, line, b"entry")
    await asyncio.sleep(0.3)  # the nudge's 100 ms pass while it sits behind the summary
    waiting = (await channel.declare_queue(line, passive=True)).declaration_result.message_count
    first = [body.decode() for body, _ in await take(channel, line)]
    letters = [f"{body.decode()} ({reason})" for body, reason in await take(channel, dead)]
    print(f"expiration 100 ms   : 300 ms on, the nudge waits behind a 60 s message "
          f"({waiting} queued)")
    print(f"{'':22}a reader gets {first}\n{'':22}dead letters: {letters}")

    await channel.declare_queue("coaching.preview", arguments={"x-expires": 300})

    async def preview_gone() -> bool:
        return not await exists(connection, "coaching.preview")

    await until(preview_gone, every=0.6)  # a passive declare is a use: it renews the TTL
    print("x-expires 300 ms    : the unused preview queue was deleted by the broker")
    await connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
