"""Asynchronous request-reply on RabbitMQ: direct reply-to, correlation ids, request TTL.

A responder consumes a service queue (auto-deleted when its last responder
leaves, so a request to a service nobody serves is *returned* to the
publisher, which fails fast). A requester consumes the pseudo-queue
``amq.rabbitmq.reply-to`` on its channel and publishes requests on that same
channel with ``reply_to="amq.rabbitmq.reply-to"``: RabbitMQ rewrites the
address so the reply comes straight back to this channel, with no reply
queue to declare or delete. ``correlation_id`` pairs each reply with its
request; a reply arriving after the requester gave up is recognised as
late and dropped. Each request expires (per-message TTL) when its requester
stops waiting, so a backlog of requests nobody waits for is discarded by the
broker, not answered. Point it at your own RabbitMQ with ``AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

log = logging.getLogger(__name__)
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
Handler = Callable[[bytes], Awaitable[bytes]]


class RequestTimeout(TimeoutError):
    """No reply came within the timeout; a reply arriving later will be dropped as late."""


class NoResponders(LookupError):
    """Nobody serves the address: RabbitMQ returned the request as unroutable."""


class RemoteError(RuntimeError):
    """The responder's handler raised; its error text came back instead of a reply."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the requester needs from a reply."""

    body: bytes
    correlation_id: str | None = None
    error: bool = False


@dataclass(frozen=True, slots=True)
class LateReply:
    """A reply that arrived after its requester had given up."""

    correlation_id: str
    body: bytes


def check(service: str, body: bytes | None = None, timeout: float | None = None) -> None:
    """Refuse a malformed address, a non-bytes body or a timeout that is not positive."""
    if not isinstance(service, str) or not NAME.fullmatch(service):
        raise ValueError(f"invalid service name {service!r}: use dotted lowercase words like 'mood-agent'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"request body must be bytes, not {type(body).__name__}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


class Correlator:
    """Matches each reply to the request waiting for it (as in the in-memory module)."""

    def __init__(self, remember: int = 1024) -> None:
        self.remember = remember
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()
        self.late: deque[LateReply] = deque(maxlen=remember)
        self.duplicates = 0
        self.strays = 0

    def expect(self, correlation_id: str) -> asyncio.Future[Envelope]:
        if correlation_id in self._waiting or correlation_id in self._finished:
            raise ValueError(f"correlation id {correlation_id!r} was already used")
        future = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def finish(self, correlation_id: str, outcome: str) -> None:
        future = self._waiting.pop(correlation_id, None)
        if future is not None and not future.done():
            future.cancel()
        if outcome == "not sent":
            return
        self._finished[correlation_id] = outcome
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)

    def deliver(self, reply: Envelope) -> str:
        cid = reply.correlation_id
        future = self._waiting.pop(cid, None) if cid is not None else None
        if future is not None and not future.done():
            future.set_result(reply)
            self.finish(cid, "answered")
            return "matched"
        outcome = self._finished.get(cid) if cid is not None else None
        if outcome == "gave up":
            self.late.append(LateReply(cid, reply.body))
            log.warning("late reply to %s dropped: its requester had given up", cid)
            return "late"
        if outcome == "answered":
            self.duplicates += 1
            log.warning("duplicate reply to %s dropped", cid)
            return "duplicate"
        self.strays += 1
        log.warning("stray reply %r dropped: no request here has that id", cid)
        return "stray"


class RabbitRequester:
    """Publishes requests on a channel that consumes its own direct reply-to address."""

    def __init__(self, channel: AbstractChannel, name: str) -> None:
        self.channel, self.name = channel, name
        self.correlator = Correlator()
        self._ids = itertools.count(1)

    @property
    def late(self) -> deque[LateReply]:
        return self.correlator.late

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        error = (message.headers or {}).get("x-error") is not None
        self.correlator.deliver(Envelope(message.body, message.correlation_id, error))

    # --8<-- [start:request]
    async def request(self, service: str, body: bytes, *, timeout: float = 5.0) -> bytes:
        """Send ``body`` to ``service``'s queue and return the reply's body.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            NoResponders: no queue named ``service`` (RabbitMQ returned the request).
            RemoteError: the responder's handler raised.
        """
        check(service, body, timeout)
        cid = f"{self.name}-{next(self._ids)}"
        waiting = self.correlator.expect(cid)
        request = aio_pika.Message(body, correlation_id=cid, message_id=cid,
                                   reply_to=DIRECT_REPLY_TO, expiration=timeout)
        outcome = "not sent"
        try:
            await self.channel.default_exchange.publish(request, routing_key=service,
                                                        mandatory=True)
            outcome = "gave up"
            async with asyncio.timeout(timeout):
                reply = await waiting
            outcome = "answered"
        except aio_pika.exceptions.PublishError:
            raise NoResponders(f"nobody serves {service!r}") from None
        except TimeoutError:
            raise RequestTimeout(f"no reply from {service!r} to {cid} within {timeout} s") from None
        finally:
            if outcome != "answered":
                self.correlator.finish(cid, outcome)
        if reply.error:
            raise RemoteError(f"{service} failed: {reply.body.decode(errors='replace')}")
        return reply.body
    # --8<-- [end:request]


class RabbitResponder:
    """Consumes a service queue, ``concurrency`` requests at a time (the prefetch)."""

    def __init__(self, channel: AbstractChannel, service: str, handler: Handler) -> None:
        self.channel, self.service, self.handler = channel, service, handler
        self.handled = self.failed = self.expired = self.malformed = 0
        self.tag = ""

    # --8<-- [start:answer]
    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        if not message.correlation_id or not message.reply_to:
            self.malformed += 1
            log.warning("%s: request without correlation_id or reply_to dropped", self.service)
            await message.ack()
            return
        try:
            body, headers = await self.handler(message.body), {}
            self.handled += 1
        except Exception as exc:  # noqa: BLE001 - the requester gets the error; we carry on
            body, headers = f"{type(exc).__name__}: {exc}".encode(), {"x-error": "1"}
            self.failed += 1
        reply = aio_pika.Message(body, correlation_id=message.correlation_id, headers=headers)
        await self.channel.default_exchange.publish(reply, routing_key=message.reply_to)
        await message.ack()  # after the reply: a crash before this redelivers the request
    # --8<-- [end:answer]

    async def stop(self) -> None:
        """Stop consuming; the auto-delete queue goes when its last responder leaves."""
        queue = await self.channel.get_queue(self.service, ensure=False)
        await queue.cancel(self.tag)
        await self.channel.close()


class RabbitBroker:
    """One connection; a channel per requester and per responder."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection

    async def requester(self, name: str | None = None) -> RabbitRequester:
        """A requester on its own channel; ``name`` prefixes its correlation ids."""
        name = name or uuid.uuid4().hex[:8]
        check(name)
        channel = await self.connection.channel(on_return_raises=True)
        requester = RabbitRequester(channel, name)
        replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(requester._on_reply, no_ack=True)  # direct reply-to: no ack
        return requester

    async def serve(self, service: str, handler: Handler, *, concurrency: int = 1
                    ) -> RabbitResponder:
        """Answer requests to ``service``; responders of one service share its queue."""
        check(service)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=concurrency)
        queue = await channel.declare_queue(service, auto_delete=True)
        responder = RabbitResponder(channel, service, handler)
        responder.tag = await queue.consume(responder._on_request)
        return responder

    async def close(self) -> None:
        await self.connection.close()


async def connect(url: str | None = None, *, attempts: int = 3) -> RabbitBroker:
    """Connect to ``url`` (default ``AMQP_URL``), retrying a few times, then fail clearly."""
    url = url or os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    for attempt in range(1, attempts + 1):
        try:
            return RabbitBroker(await aio_pika.connect(url, timeout=5))
        except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError) as error:
            if attempt == attempts:
                raise ConnectionError(
                    f"cannot reach RabbitMQ at {url} after {attempts} attempts: {error}") from error
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


MOODS = {"great": b"mood 0.9", "tired": b"mood 0.3", "walked": b"mood 0.6", "slept": b"mood 0.7"}


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` is true, for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def demo(broker: RabbitBroker) -> None:
    """The scenario every backend prints: a reply, two timeouts, a late reply, errors."""
    release, seen = asyncio.Event(), []

    async def mood_agent(body: bytes) -> bytes:
        seen.append(body.decode())
        if not body:
            raise ValueError("empty entry")
        if b"tired" in body:
            await release.wait()  # the model is slow today
        return next(mood for word, mood in MOODS.items() if word.encode() in body)

    agent = await broker.serve("mood-agent", mood_agent, concurrency=1)
    coach = await broker.requester("coach")

    async def ask(service: str, text: str, timeout: float = 5.0) -> None:
        try:
            answer: object = await coach.request(service, text.encode(), timeout=timeout)
        except (RequestTimeout, NoResponders, RemoteError) as error:
            answer = f"{type(error).__name__}: {error}"
        print(f"{service} <- {text!r}\n    {answer}")

    await ask("mood-agent", "ran 5 km, felt great")
    await ask("mood-agent", "tired, skipped the run", timeout=0.2)  # handler stalls
    await ask("mood-agent", "walked to work", timeout=0.2)  # queued behind it
    release.set()
    await until(lambda: coach.late)
    print(f"late: {[(r.correlation_id, r.body) for r in coach.late]}")
    await ask("mood-agent", "slept well")  # gets its own reply, not a late one
    await ask("habits-agent", "walked")
    await ask("mood-agent", "")
    print(f"handler got {seen}")
    print(f"duplicates {coach.correlator.duplicates}, strays {coach.correlator.strays}")
    await agent.stop()


async def main() -> int:
    """Run the scenario against the RabbitMQ at ``AMQP_URL``."""
    try:
        broker = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet AMQP_URL to a RabbitMQ you may write to.", file=sys.stderr)
        return 1
    try:
        await demo(broker)
    finally:
        await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
