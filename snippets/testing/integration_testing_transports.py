"""One contract test suite, run against the in-memory transport and five real engines.

The coaching services publish and subscribe through a two-call port,
:class:`Transport`. In unit tests it is the in-memory default; in production
it is Redis pub/sub, PostgreSQL ``LISTEN``/``NOTIFY``, a RabbitMQ topic
exchange, NATS core subjects or a Kafka topic. The ``test_*`` functions
state what every transport must do and take the transport as an argument, so
the same test runs against each: that is what keeps the fake honest. A fake
that passes Python objects by reference instead of encoding them, as a real
wire does, hides bugs that production will show; the suite catches it.

``pytest thisfile.py`` runs every test once per transport through the
``connect`` fixture, skipping each engine whose address is not set
(``REDIS_URL``, ``DATABASE_URL``, ``AMQP_URL``, ``NATS_URL``,
``KAFKA_BOOTSTRAP``). ``main()`` does the same, then runs the suite against
the lax fake.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
import nats
import psycopg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql


def encode(event: dict[str, Any]) -> bytes:
    """What every wire carries: UTF-8 JSON. Anything JSON cannot hold is refused here."""
    return json.dumps(event, ensure_ascii=False, allow_nan=False).encode()


def decode(body: bytes | str) -> dict[str, Any]:
    return json.loads(body)


# --8<-- [start:port]
class Subscription(Protocol):
    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event, or ``TimeoutError`` after ``timeout`` seconds."""


class Transport(Protocol):
    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving ``channel``: everything published after this returns arrives."""

    async def publish(self, channel: str, event: dict[str, Any]) -> None: ...
    async def close(self) -> None: ...


class QueueSubscription:
    """A subscription fed by a callback into a local queue."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox.get(), timeout)


class MemoryTransport:
    """The in-memory default. It encodes and decodes like a wire, on purpose."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[QueueSubscription]] = {}

    async def subscribe(self, channel: str) -> QueueSubscription:
        self.subscribers.setdefault(channel, []).append(subscription := QueueSubscription())
        return subscription

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        body = encode(event)
        for subscription in self.subscribers.get(channel, []):
            subscription.inbox.put_nowait(decode(body))

    async def close(self) -> None:
        self.subscribers.clear()


class LaxMemoryTransport(MemoryTransport):
    """Deliberately broken fake: hands every subscriber the publisher's own object."""

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        for subscription in self.subscribers.get(channel, []):
            subscription.inbox.put_nowait(event)
# --8<-- [end:port]


class Pumped:
    """Background tasks that move what a client receives into subscriptions' inboxes."""

    tasks: list[asyncio.Task[None]]

    def pump(self, source: AsyncIterator[Any], body: Callable[[Any], bytes | str]
             ) -> QueueSubscription:
        subscription = QueueSubscription()

        async def run() -> None:
            async for item in source:
                subscription.inbox.put_nowait(decode(body(item)))

        self.tasks.append(asyncio.create_task(run()))
        return subscription

    async def stop_pumps(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# --8<-- [start:redis]
class RedisTransport(Pumped):
    """Redis pub/sub: SUBSCRIBE is confirmed before ``subscribe`` returns."""

    def __init__(self, url: str) -> None:
        self.client, self.tasks, self.pubsubs = redis.from_url(url), [], []

    async def subscribe(self, channel: str) -> Subscription:
        self.pubsubs.append(pubsub := self.client.pubsub())
        await pubsub.subscribe(channel)
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        return self.pump(pubsub.listen(), lambda message: message["data"])

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self.client.publish(channel, encode(event))

    async def close(self) -> None:
        await self.stop_pumps()
        for pubsub in self.pubsubs:
            await pubsub.aclose()
        await self.client.aclose()
# --8<-- [end:redis]


# --8<-- [start:postgres]
class PostgresTransport(Pumped):
    """LISTEN/NOTIFY: one listening connection per subscription, payloads up to 8000 bytes."""

    def __init__(self, url: str) -> None:
        self.url, self.tasks = url, []
        self.conns: dict[str, psycopg.AsyncConnection] = {}

    async def _connection(self, name: str) -> psycopg.AsyncConnection:
        if name not in self.conns:
            self.conns[name] = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        return self.conns[name]

    async def subscribe(self, channel: str) -> Subscription:
        listener = await self._connection(f"listener-{len(self.conns)}")  # busy in notifies()
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return self.pump(listener.notifies(), lambda notify: notify.payload)

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        publisher = await self._connection("publisher")
        await publisher.execute("SELECT pg_notify(%s, %s)", (channel, encode(event).decode()))

    async def close(self) -> None:
        await self.stop_pumps()
        for conn in self.conns.values():
            await conn.close()
# --8<-- [end:postgres]


# --8<-- [start:rabbitmq]
class RabbitTransport:
    """A topic exchange; each subscription is an exclusive queue bound to the channel."""

    async def open(self, url: str) -> RabbitTransport:
        self.connection = await aio_pika.connect(url, timeout=5)
        self.channel = await self.connection.channel()  # publisher confirms are on
        self.exchange = await self.channel.declare_exchange(
            "coaching.events", aio_pika.ExchangeType.TOPIC)
        return self

    async def subscribe(self, channel: str) -> Subscription:
        queue = await self.channel.declare_queue(exclusive=True)
        await queue.bind(self.exchange, routing_key=channel)
        subscription = QueueSubscription()

        async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            subscription.inbox.put_nowait(decode(message.body))

        await queue.consume(deliver, no_ack=True)
        return subscription

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self.exchange.publish(aio_pika.Message(encode(event)), routing_key=channel)

    async def close(self) -> None:
        await self.connection.close()
# --8<-- [end:rabbitmq]


# --8<-- [start:nats]
class NatsTransport:
    """NATS core subjects; a flush makes the server register a subscription first."""

    async def open(self, url: str) -> NatsTransport:
        self.client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
        return self

    async def subscribe(self, channel: str) -> Subscription:
        subscription = QueueSubscription()

        async def deliver(message: Any) -> None:
            subscription.inbox.put_nowait(decode(message.data))

        await self.client.subscribe(channel, cb=deliver)
        await self.client.flush()
        return subscription

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self.client.publish(channel, encode(event))

    async def close(self) -> None:
        await self.client.close()
# --8<-- [end:nats]


# --8<-- [start:kafka]
class KafkaTransport(Pumped):
    """One single-partition topic per channel; a subscriber starts at the end of it."""

    async def open(self, bootstrap: str) -> KafkaTransport:
        self.bootstrap, self.topics, self.consumers, self.tasks = bootstrap, set(), [], []
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await self.producer.start()
        return self

    async def _topic(self, channel: str) -> None:
        if channel not in self.topics:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:  # a topic that exists already comes back as an error code: fine
                await admin.create_topics([NewTopic(channel, 1, 1)])
            finally:
                await admin.close()
            self.topics.add(channel)

    async def subscribe(self, channel: str) -> Subscription:
        await self._topic(channel)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, fetch_max_wait_ms=20)
        await consumer.start()
        self.consumers.append(consumer)
        partition = TopicPartition(channel, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.position(partition)  # resolve "the end" now, not at the first fetch
        return self.pump(consumer, lambda record: record.value)

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self._topic(channel)
        await self.producer.send_and_wait(channel, encode(event), partition=0)

    async def close(self) -> None:
        await self.stop_pumps()
        for consumer in self.consumers:
            await consumer.stop()
        await self.producer.stop()
# --8<-- [end:kafka]


async def open_transport(kind: str, url: str | None = None) -> Transport:
    """Connect the transport named ``kind`` (``memory``, ``redis``, ``postgres``, ...)."""
    if kind == "memory":
        return MemoryTransport()
    if kind == "lax-memory":
        return LaxMemoryTransport()
    if kind == "redis":
        return RedisTransport(url)
    if kind == "postgres":
        return PostgresTransport(url)
    opener = {"rabbitmq": RabbitTransport, "nats": NatsTransport, "kafka": KafkaTransport}[kind]
    return await opener().open(url)


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Let pytest call an async test; no test may take over 20 s."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=20))

    return run


def channel_name() -> str:
    """A channel no earlier test used, so tests can share one server."""
    return f"coaching.test.{uuid.uuid4().hex[:12]}"


async def nothing_arrives(subscription: Subscription) -> bool:
    try:
        await subscription.next(timeout=0.2)
    except TimeoutError:
        return True
    return False


# --8<-- [start:fixture]
ADDRESSES = {"redis": "REDIS_URL", "postgres": "DATABASE_URL", "rabbitmq": "AMQP_URL",
             "nats": "NATS_URL", "kafka": "KAFKA_BOOTSTRAP"}


def transport_for(kind: str) -> Callable[[], Awaitable[Transport]]:
    """How to open ``kind``: from its address variable, or skip the test when it is unset."""
    if kind in ("memory", "lax-memory"):
        return functools.partial(open_transport, kind)
    if not os.environ.get(ADDRESSES[kind]):
        pytest.skip(f"set {ADDRESSES[kind]} to run the suite against {kind}")
    return functools.partial(open_transport, kind, os.environ[ADDRESSES[kind]])


@pytest.fixture(params=["memory", *ADDRESSES])
def connect(request: pytest.FixtureRequest) -> Callable[[], Awaitable[Transport]]:
    """Every test that takes ``connect`` runs once per transport."""
    return transport_for(request.param)
# --8<-- [end:fixture]


# --8<-- [start:tests]
@synchronous
async def test_a_subscriber_gets_what_is_published_after_it_subscribed_in_order(connect):
    transport, channel = await connect(), channel_name()
    inbox = await transport.subscribe(channel)
    for n in range(5):
        await transport.publish(channel, {"entry_id": f"e{n}"})
    assert [(await inbox.next())["entry_id"] for _ in range(5)] == ["e0", "e1", "e2", "e3", "e4"]
    await transport.close()


@synchronous
async def test_every_subscriber_gets_each_event(connect):
    transport, channel = await connect(), channel_name()
    goals, reflection = await transport.subscribe(channel), await transport.subscribe(channel)
    await transport.publish(channel, {"entry_id": "e1"})
    assert await goals.next() == await reflection.next() == {"entry_id": "e1"}
    await transport.close()


@synchronous
async def test_a_subscriber_gets_nothing_from_other_channels(connect):
    transport, goals_channel = await connect(), channel_name()
    goals = await transport.subscribe(goals_channel)
    await transport.publish(channel_name(), {"entry_id": "elsewhere"})
    await transport.publish(goals_channel, {"entry_id": "here"})
    assert await goals.next() == {"entry_id": "here"}
    assert await nothing_arrives(goals)
    await transport.close()


@synchronous
async def test_an_event_arrives_as_the_wire_carries_it(connect):
    transport, channel = await connect(), channel_name()
    inbox = await transport.subscribe(channel)
    await transport.publish(channel, {"text": "Müde 😴", "km": 2.5, "tags": ("run", "rain"),
                                      "mood": None, "goal": {"id": "run-5k", "done": False}})
    got = await inbox.next()
    assert got == {"text": "Müde 😴", "km": 2.5, "tags": ["run", "rain"],
                   "mood": None, "goal": {"id": "run-5k", "done": False}}, f"arrived as {got}"
    await transport.close()


@synchronous
async def test_a_payload_the_wire_cannot_carry_is_refused_at_publish(connect):
    transport, channel = await connect(), channel_name()
    inbox = await transport.subscribe(channel)
    written_at = datetime(2025, 3, 14, 21, 30, tzinfo=UTC)
    try:
        await transport.publish(channel, {"entry_id": "e1", "written_at": written_at})
    except TypeError as error:
        assert "datetime is not JSON serializable" in str(error)
    else:
        raise AssertionError("a datetime was published; no real broker can carry it")
    assert await nothing_arrives(inbox)
    await transport.close()


@synchronous
async def test_a_subscriber_gets_a_copy_the_publisher_cannot_change(connect):
    transport, channel = await connect(), channel_name()
    inbox = await transport.subscribe(channel)
    event = {"entry_id": "e1", "tags": ["run"]}
    await transport.publish(channel, event)
    event["tags"].append("edited after publishing")
    got = await inbox.next()
    assert got == {"entry_id": "e1", "tags": ["run"]}, f"the subscriber saw the edit: {got}"
    await transport.close()
# --8<-- [end:tests]


TESTS = (test_a_subscriber_gets_what_is_published_after_it_subscribed_in_order,
         test_every_subscriber_gets_each_event, test_a_subscriber_gets_nothing_from_other_channels,
         test_an_event_arrives_as_the_wire_carries_it,
         test_a_payload_the_wire_cannot_carry_is_refused_at_publish,
         test_a_subscriber_gets_a_copy_the_publisher_cannot_change)

def run_tests(connect: Callable[[], Awaitable[Transport]]) -> list[tuple[str, str | None]]:
    """Run every test with ``connect``: (name, None) or (name, first line of the failure)."""
    results: list[tuple[str, str | None]] = []
    for test in TESTS:
        try:
            test(connect)
        except AssertionError as failure:
            results.append((test.__name__, (str(failure) or "assert failed").splitlines()[0]))
        else:
            results.append((test.__name__, None))
    return results


def main() -> None:
    for kind in ["memory", *ADDRESSES, "lax-memory"]:
        try:
            results = run_tests(transport_for(kind))
        except pytest.skip.Exception as skipped:
            print(f"{kind:<11} skipped: {skipped.msg}")
            continue
        failed = [(name, why) for name, why in results if why]
        print(f"{kind:<11} {len(results) - len(failed)} passed, {len(failed)} failed")
        for name, why in failed:
            print(f"  caught by {name}:\n    {why}")


if __name__ == "__main__":
    main()
