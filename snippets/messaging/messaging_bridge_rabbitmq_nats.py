"""A messaging bridge from RabbitMQ to NATS JetStream: nothing lost, no visible duplicate.

The bridge consumes a RabbitMQ queue with manual acknowledgements and
publishes each message to a JetStream subject. It acknowledges the message
on RabbitMQ only after JetStream has confirmed storing it (the ``PubAck``),
so a bridge that dies at any point leaves the message unacknowledged and
RabbitMQ delivers it again. The second publish is harmless: it carries the
RabbitMQ ``message_id`` in the ``Nats-Msg-Id`` header, and JetStream drops a
message whose id it stored within the stream's ``duplicate_window`` (the
``PubAck`` then says ``duplicate``). A message without an id could not be
deduplicated, so it is rejected to the source queue's dead-letter exchange.
When JetStream does not answer, the bridge retries a few times, then puts
the message back and stops. Point it at your servers with ``AMQP_URL`` and
``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import nats
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

StepHook = Callable[[str, str], Awaitable[None]]


class BridgeStalled(RuntimeError):
    """JetStream did not confirm a publish after the retries; the message was requeued."""


async def declare_source(channel: AbstractChannel, queue: str) -> None:
    """A durable queue whose rejected messages go to ``<queue>.rejected``."""
    dlx = await channel.declare_exchange(f"{queue}.dlx", aio_pika.ExchangeType.FANOUT,
                                         durable=True)
    rejected = await channel.declare_queue(f"{queue}.rejected", durable=True)
    await rejected.bind(dlx)
    await channel.declare_queue(queue, durable=True,
                                arguments={"x-dead-letter-exchange": dlx.name})


async def declare_target(js: JetStreamContext, stream: str, subject: str,
                         duplicate_window: float = 120.0) -> None:
    """A file-backed stream on ``subject`` that drops repeated ids for ``duplicate_window`` s."""
    await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE,
                                     duplicate_window=duplicate_window))


@dataclass
class Bridge:
    """Relays every message of ``queue`` to ``subject``, acknowledging after the PubAck.

    Args:
        channel: an aio-pika channel (its prefetch bounds what the bridge holds).
        js: a JetStream context.
        on_step: awaited after each step (``consumed``, ``published``, ``acked``) with
            the message id: for metrics, and for tests that kill the bridge there.
        retries: publish attempts before the message is requeued and the bridge stops.
    """

    channel: AbstractChannel
    queue: str
    js: JetStreamContext
    subject: str
    on_step: StepHook | None = None
    retries: int = 3
    publish_timeout: float = 2.0
    relayed: int = 0
    duplicates: int = 0
    rejected: int = 0

    async def _step(self, step: str, msg_id: str) -> None:
        if self.on_step is not None:
            await self.on_step(step, msg_id)

    # --8<-- [start:relay]
    async def relay(self, message: AbstractIncomingMessage) -> None:
        """Publish one message to JetStream, wait for its PubAck, then ack it on RabbitMQ."""
        msg_id = message.message_id
        if not msg_id:  # JetStream could not drop a second copy of it: set it aside
            await message.reject(requeue=False)
            self.rejected += 1
            return
        await self._step("consumed", msg_id)
        headers = {"Nats-Msg-Id": msg_id, "Content-Type": message.content_type or ""}
        attempt = 0
        while True:
            attempt += 1
            try:
                ack = await self.js.publish(self.subject, message.body, headers=headers,
                                            timeout=self.publish_timeout)
                break
            except (nats.errors.Error, TimeoutError) as error:
                if attempt >= self.retries:
                    await message.nack(requeue=True)  # back in RabbitMQ, nothing lost
                    raise BridgeStalled(f"JetStream did not confirm {msg_id} after "
                                        f"{attempt} attempts: {error!r}") from error
                await asyncio.sleep(0.1 * 2**attempt)
        self.duplicates += bool(ack.duplicate)  # an earlier bridge had published it
        await self._step("published", msg_id)
        await message.ack()
        self.relayed += 1
        await self._step("acked", msg_id)
    # --8<-- [end:relay]

    async def run(self, idle: float | None = None, limit: int | None = None) -> None:
        """Relay messages as they come; return once none arrived for ``idle`` s, or
        after ``limit`` messages (a batch job), handing back what was prefetched.

        An exception (a crash) leaves what the bridge holds unacknowledged:
        RabbitMQ requeues it when the connection closes.
        """
        queue = await self.channel.get_queue(self.queue)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put)
        handled = 0
        while limit is None or handled < limit:
            try:
                message = await asyncio.wait_for(inbox.get(), idle)
            except TimeoutError:
                break
            await self.relay(message)
            handled += 1
        await queue.cancel(tag)
        # Prefetched but not relayed: hand them back now. basic.recover requeues every
        # unacknowledged delivery of the channel on the server, including those still on
        # their way to the inbox, which a nack per message in the inbox would miss.
        underlay = await self.channel.get_underlay_channel()
        await underlay.basic_recover(requeue=True)


async def read_stream(js: JetStreamContext, stream: str) -> list[tuple[str, bytes]]:
    """Every message stored in ``stream``, in order, as (Nats-Msg-Id, body)."""
    info = await js.stream_info(stream)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await js.get_msg(stream, seq)
        messages.append(((stored.headers or {}).get("Nats-Msg-Id", ""), stored.data))
    return messages


async def main() -> int:
    """Five journal entries bridged; the bridge crashes after a publish and restarts."""
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    nats_url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    try:
        rabbit = await aio_pika.connect(amqp_url, timeout=5)
        client = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=1)
    except (OSError, aio_pika.exceptions.AMQPConnectionError, nats.errors.Error) as error:
        print(f"cannot reach RabbitMQ at {amqp_url} or NATS at {nats_url}: {error}\n"
              "Set AMQP_URL and NATS_URL to servers you may write to.", file=sys.stderr)
        return 1
    js, queue, stream = client.jetstream(), "coaching.entries.bridged", "COACHING_BRIDGED"
    channel = await rabbit.channel()
    for name in (queue, f"{queue}.rejected"):
        await channel.queue_delete(name)  # a clean demo on reused servers
    try:
        await js.delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    await declare_source(channel, queue)
    await declare_target(js, stream, "coaching.bridged")
    for n in range(1, 6):
        await channel.default_exchange.publish(
            aio_pika.Message(f"entry {n}".encode(), message_id=f"entry-{n}",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue)

    class Killed(Exception):
        pass

    async def die_after_publishing_entry_3(step: str, msg_id: str) -> None:
        if (step, msg_id) == ("published", "entry-3"):
            raise Killed  # JetStream has entry-3; RabbitMQ never gets the ack

    first = Bridge(await rabbit.channel(), queue, js, "coaching.bridged",
                   on_step=die_after_publishing_entry_3)
    try:
        await first.run(idle=2)
    except Killed:
        await rabbit.close()  # the connection drops: RabbitMQ requeues what it held
    print(f"bridge 1 : relayed {first.relayed}, then died after publishing entry-3")
    rabbit = await aio_pika.connect(amqp_url, timeout=5)
    second = Bridge(await rabbit.channel(), queue, js, "coaching.bridged")
    await second.run(idle=1)
    print(f"bridge 2 : relayed {second.relayed}, of which JetStream dropped "
          f"{second.duplicates} as a duplicate")
    stored = await read_stream(js, stream)
    print(f"JetStream: {[msg_id for msg_id, _ in stored]}")
    await rabbit.close()
    await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
