"""The JetStream queue's own promises, beyond the shared contract: its defaults (batches
of 10, a 1 s wait), the body limit's boundary and where the limit comes from, one stream
created per topic, and how ``connect`` tries: exactly ``attempts`` times, 0.2 s apart,
2 s at most for a server that never answers, quietly, and where it looks by default."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from snippets.messaging import message_queues_nats as mq
from snippets.messaging.message_queues_nats import connect, stream_name
from tests.messaging.conftest import run
from tests.messaging.support import FakeServer, silent_connect

GROUP = "coaches"
URL = "nats://127.0.0.1:{port}"


async def fresh(url: str, topic: str, **options: float) -> mq.NatsBroker:
    """A broker on ``url`` whose topic's stream starts empty."""
    broker = await connect(url, **options)
    try:
        await broker.js.delete_stream(stream_name(topic))
    except mq.nats.js.errors.NotFoundError:
        pass
    return broker


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(nats_server):
    topic = "limit.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic, max_body=16)  # the option reaches it
        consumer = await broker.consumer(topic, GROUP, "reader")
        await broker.publish(topic, b"x" * 16)
        await broker.publish_many(topic, [b"w" * 16])
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish(topic, b"y" * 17)
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish_many(topic, [b"z", b"y" * 17])
        got = await consumer.receive(timeout=2)
        await consumer.ack(got)
        stored = (await broker.js.stream_info(stream_name(topic))).state.messages
        await broker.close()
        return [(m.body, m.deliveries) for m in got], stored

    got, stored = run(scenario())
    assert got == [(b"x" * 16, 1), (b"w" * 16, 1)]  # a first delivery counts 1
    assert stored == 2  # nothing of a refused batch was stored, not even its good body


def test_by_default_a_receive_takes_at_most_10_and_waits_about_1_second(nats_server):
    topic = "defaults.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(12)])
        got = await consumer.receive()
        rest = await consumer.receive()
        await consumer.ack(got + rest)
        loop = asyncio.get_running_loop()
        start = loop.time()
        empty = await consumer.receive()
        waited = loop.time() - start
        await broker.close()
        return got, rest, empty, waited

    got, rest, empty, waited = run(scenario())
    assert [(m.body, m.deliveries) for m in got] == [(f"entry-{n}".encode(), 1) for n in range(10)]
    assert [m.body for m in rest] == [b"entry-10", b"entry-11"]
    assert empty == [] and 0.9 <= waited < 1.9, waited


def test_an_empty_receive_returns_after_its_own_timeout_not_the_clients_default(nats_server):
    """nats-py's own fetch waits 5 s unless told otherwise."""
    topic = "short.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await consumer.receive(timeout=0.3)
        waited = loop.time() - start
        await broker.close()
        return got, waited

    got, waited = run(scenario())
    assert got == [] and waited < 2.0, waited


def test_a_topic_s_stream_is_created_once_per_broker_not_once_per_publish(nats_server):
    """Creating a stream is a round trip to the server; the broker remembers the ones it
    made, so a publish costs one request, not two."""
    topic = "created.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic)
        created: list[str] = []
        add_stream = broker.js.add_stream

        async def counting(config, **kwargs):
            created.append(config.name)
            return await add_stream(config, **kwargs)

        broker.js.add_stream = counting
        await broker.subscribe(topic, GROUP)
        await broker.publish(topic, b"entry-1")
        await broker.publish_many(topic, [b"entry-2", b"entry-3"])
        await broker.publish(topic, b"entry-4")
        info = await broker.js.stream_info(stream_name(topic))
        await broker.close()
        return created, info

    created, info = run(scenario())
    assert created == ["CREATED_ENTRIES"]
    assert info.state.messages == 4 and info.config.subjects == [topic]
    assert info.config.storage == mq.StorageType.FILE


def test_by_default_a_message_not_acknowledged_within_30_seconds_is_delivered_again(nats_server):
    """The default lease is the group's ack_wait on the server, where every client of the
    group, in any process, is held to it."""
    topic = "lease.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic)
        await broker.subscribe(topic, GROUP)
        info = await broker.js.consumer_info(stream_name(topic), GROUP)
        await broker.close()
        return info.config

    config = run(scenario())
    assert config.ack_wait == 30.0
    assert config.ack_policy == mq.AckPolicy.EXPLICIT


def test_acking_nothing_or_a_message_twice_is_harmless(nats_server):
    topic = "harmless.entries"

    async def scenario():
        broker = await fresh(nats_server.url, topic, lease=0.5)
        consumer = await broker.consumer(topic, GROUP, "reader")
        await broker.publish(topic, b"entry-1")
        await consumer.ack([])
        got = await consumer.receive(timeout=2)
        await consumer.ack(got)
        await consumer.ack(got)
        await asyncio.sleep(0.8)  # past the lease: an acknowledged message stays gone
        again = await consumer.receive(timeout=0.3)
        info = await broker.js.consumer_info(stream_name(topic), GROUP)
        await broker.close()
        return got, again, info

    got, again, info = run(scenario())
    assert [m.body for m in got] == [b"entry-1"] and again == []
    assert info.ack_floor.stream_seq == 1 and info.num_ack_pending == 0


def test_without_a_url_connect_looks_for_the_local_default_and_names_it(monkeypatch):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 4222)) == 0:
            pytest.skip("something listens on 127.0.0.1:4222: the default would reach it")
    monkeypatch.delenv("NATS_URL", raising=False)
    with pytest.raises(ConnectionError,
                       match="cannot reach NATS at nats://127.0.0.1:4222 after 10 attempts: "):
        run(connect(), timeout=30)


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_connect_makes_exactly_its_attempts_0_2_seconds_apart_and_logs_each_quietly(
        attempts, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        closing = FakeServer(answer=True, url=URL)
        async with closing as url:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ConnectionError,
                               match=rf"cannot reach NATS at {url} after {attempts} attempts: "):
                await connect(url, attempts=attempts)
            waited = loop.time() - start
        return closing.connections, waited

    connections, waited = run(scenario(), timeout=30)
    assert connections == attempts
    gaps = 0.2 * (attempts - 1)
    assert gaps <= waited < gaps + 0.9, waited
    ours = [r for r in caplog.records if r.name == "nats_queue"]
    assert [r.levelno for r in ours] == [logging.DEBUG] * attempts
    assert all(r.getMessage().startswith("nats: Error('nats: empty response") for r in ours)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_server_that_never_answers_fails_the_connect_after_2_seconds_instead_of_hanging():
    connections, waited = run(silent_connect(connect, URL, "after 1 attempts: TimeoutError"), timeout=30)
    assert connections == 1 and 2.0 <= waited < 2.9, waited


def test_connect_refuses_fewer_than_one_attempt_by_name():
    with pytest.raises(ValueError, match="attempts must be at least 1, not 0"):
        run(connect("nats://127.0.0.1:1", attempts=0))


@pytest.mark.parametrize("attempts", [1, 10])
def test_a_connected_client_reconnects_within_its_attempts_or_gives_up(nats_factory, attempts):
    """After a restart of about a second, 10 tries 0.2 s apart rejoin the server and the
    next publish is stored; with one try the client closes and the publish fails."""
    engine = nats_factory()
    topic = "restart.entries"

    async def before():
        broker = await connect(engine.url, attempts=attempts)
        await broker.publish(topic, b"entry-1")
        return broker

    async def after(broker):
        for _ in range(100):  # until the client has rejoined or given up
            if broker.client.is_connected or broker.client.is_closed:
                break
            await asyncio.sleep(0.05)
        try:
            stored = await broker.publish(topic, b"entry-2")
        except (mq.nats.errors.Error, OSError) as error:
            stored = type(error).__name__
        closed = broker.client.is_closed
        await broker.close()
        return stored, closed

    async def scenario():
        broker = await before()
        await asyncio.to_thread(engine.stop)
        await asyncio.to_thread(engine.start)
        return await after(broker)

    stored, closed = run(scenario(), timeout=60)
    if attempts == 1:
        assert closed and stored == "ConnectionClosedError"
    else:
        assert (stored, closed) == (2, False)
