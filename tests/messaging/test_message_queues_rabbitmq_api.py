"""The RabbitMQ queue's own promises, beyond the shared contract: its defaults (batches of
10, a 1 s wait, a prefetch of 100), the body limit's boundary, publish_many's messages
routed to the topic's queues (and a refusal that names the topic), a receive that hands
over what has arrived without waiting for a full batch, each consumer on the broker under
its own name, and how ``connect`` tries (exactly ``attempts`` times, backing off
exponentially, 5 s at most for a server that never answers, the local default address).

What the broker holds (consumer tags, prefetch counts) is read back with ``rabbitmqctl``."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.parse
import uuid

import pytest

from snippets.messaging import message_queues_rabbitmq as mq
from snippets.messaging.message_queues_rabbitmq import UnroutableError, connect
from tests.messaging.conftest import run
from tests.messaging.support import FakeServer, silent_connect

URL = "amqp://guest:guest@127.0.0.1:{port}/"


def fresh_topic() -> str:
    return f"t{uuid.uuid4().hex[:10]}.entries"


def consumers_on(server, queue: str) -> set[tuple[str, int]]:
    """(consumer tag, prefetch count) of each consumer the broker has on ``queue``."""
    vhost = urllib.parse.unquote(server.url.rsplit("/", 1)[1]) or "/"
    rows = json.loads(server.ctl("list_consumers", "-p", vhost, "-q", "--formatter", "json",
                                 "queue_name", "consumer_tag", "prefetch_count"))
    return {(r["consumer_tag"], r["prefetch_count"]) for r in rows if r["queue_name"] == queue}


async def take(consumer: mq.RabbitConsumer, want: int) -> list[mq.Message]:
    """Receive and acknowledge until ``want`` messages arrived, then check for a stray one."""
    got: list[mq.Message] = []
    while len(got) < want:
        batch = await consumer.receive(max_messages=want - len(got), timeout=10)
        assert batch, f"only {got} arrived"
        await consumer.ack(batch)
        got += batch
    got += await consumer.receive(timeout=0.5)
    await consumer.ack(got)
    return got


# ------------------------------------------------------------------ bodies and batches
def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(rabbitmq_server):
    topic = fresh_topic()

    async def scenario():
        broker = await connect(rabbitmq_server.url, max_body=16)  # reaches both publishes
        reader = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"x" * 16)
        await broker.publish_many(topic, [b"w" * 16])
        with pytest.raises(ValueError, match="^message of 17 bytes exceeds the 16-byte limit$"):
            await broker.publish(topic, b"y" * 17)
        with pytest.raises(ValueError, match="^message of 17 bytes exceeds the 16-byte limit$"):
            await broker.publish_many(topic, [b"z", b"y" * 17])
        got = await take(reader, 2)
        await broker.close()
        return [m.body for m in got]

    # nothing of the refused batch was stored, not even its good first body
    assert run(scenario()) == [b"x" * 16, b"w" * 16]


def test_publish_many_gives_every_group_every_body_and_names_a_topic_no_queue_takes(
        rabbitmq_server):
    topic, lonely = fresh_topic(), fresh_topic()

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        coach = await broker.consumer(topic, "coaches", "coach")
        evening = await broker.consumer(topic, "reflection", "evening")
        await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(1, 5)])
        got = {"coaches": await take(coach, 4), "reflection": await take(evening, 4)}
        with pytest.raises(UnroutableError) as refused:
            await broker.publish_many(lonely, [b"entry-1", b"entry-2"])
        await broker.close()
        return {g: sorted(m.body for m in ms) for g, ms in got.items()}, str(refused.value)

    got, refused = run(scenario())
    every = [f"entry-{n}".encode() for n in range(1, 5)]
    assert got == {"coaches": every, "reflection": every}
    assert refused == (f"RabbitMQ stored no copy: no queue is bound to topic {lonely!r}; "
                       "subscribe a group (again: a crash can lose a binding) and publish again")


def test_by_default_a_receive_takes_at_most_10_and_waits_about_1_second(rabbitmq_server):
    topic = fresh_topic()

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        reader = await broker.consumer(topic, "coaches", "reader")
        await broker.publish_many(topic, [f"entry-{n:02}".encode() for n in range(14)])
        reader.linger = 10.0  # wait for all 14 to arrive: only max_messages stops a batch
        got = await reader.receive(timeout=10)
        two = await reader.receive(max_messages=2, timeout=10)
        reader.linger = 0.005
        rest = await reader.receive(timeout=10)
        await reader.ack(got + two + rest)
        loop = asyncio.get_running_loop()
        start = loop.time()
        empty = await reader.receive()
        waited = loop.time() - start
        await broker.close()
        return got, two, rest, empty, waited

    got, two, rest, empty, waited = run(scenario())
    assert len(got) == 10 and len(two) == 2 and len(rest) == 2
    assert sorted(m.body for m in got + two + rest) == [f"entry-{n:02}".encode() for n in range(14)]
    assert empty == [] and 0.9 <= waited < 1.9, waited


def test_a_receive_hands_over_what_has_arrived_without_waiting_for_a_full_batch(
        rabbitmq_server):
    """After the first message a receive waits only ``linger`` (5 ms) for more, not its
    timeout and not a second: one message published alone comes back at once."""
    topic = fresh_topic()

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        reader = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"entry-1")  # confirmed: in the queue, pushed to reader
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await reader.receive(max_messages=10, timeout=30)
        took = loop.time() - start
        await reader.ack(got)
        await broker.close()
        return [m.body for m in got], took

    got, took = run(scenario())
    assert got == [b"entry-1"] and took < 1.0, took


def test_each_consumer_is_on_the_broker_under_its_name_holding_at_most_100_by_default(
        rabbitmq_server):
    """The consumer tag is the name passed to ``consumer`` (what ``rabbitmqctl`` and the
    management UI show); the prefetch is 100 unless ``connect`` is given another."""
    topic = fresh_topic()

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        coaches = [await broker.consumer(topic, "coaches", n) for n in ("coach-a", "coach-b")]
        small = await connect(rabbitmq_server.url, prefetch=2)
        evening = await small.consumer(topic, "reflection", "evening")
        seen = (await asyncio.to_thread(consumers_on, rabbitmq_server, f"{topic}.coaches"),
                await asyncio.to_thread(consumers_on, rabbitmq_server, f"{topic}.reflection"))
        tags = [c.tag for c in (*coaches, evening)]
        await small.close()
        await broker.close()
        return seen, tags

    (coaches, reflection), tags = run(scenario())
    assert coaches == {("coach-a", 100), ("coach-b", 100)}
    assert reflection == {("evening", 2)}
    assert tags == ["coach-a", "coach-b", "evening"]


# ------------------------------------------------------------------ connect
def test_without_an_address_connect_tries_the_local_default_three_times_and_names_it(
        monkeypatch):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5672)) == 0:
            pytest.skip("something listens on 127.0.0.1:5672: the default would reach it")
    monkeypatch.delenv("AMQP_URL", raising=False)
    with pytest.raises(ConnectionError,
                       match=r"^cannot reach RabbitMQ at amqp://guest:guest@127\.0\.0\.1:5672/ "
                             r"after 3 attempts: "):
        run(connect(), timeout=30)


@pytest.mark.parametrize("attempts", [None, 1, 4])
def test_connect_makes_exactly_its_attempts_and_backs_off_exponentially_between_them(
        monkeypatch, attempts):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: object) -> object:
        slept.append(delay)
        return await real_sleep(0, *args)

    async def scenario():
        closing = FakeServer(answer=True, url=URL)
        async with closing as url:
            monkeypatch.setattr(mq.asyncio, "sleep", sleep)
            options = {} if attempts is None else {"attempts": attempts}
            try:
                with pytest.raises(ConnectionError,
                                   match=rf"^cannot reach RabbitMQ at {url} after "
                                         rf"{attempts or 3} attempts: "):
                    await connect(url, **options)
            finally:
                monkeypatch.undo()
        return closing.connections

    connections = run(scenario())
    assert connections == (attempts or 3)  # three by default
    # 0.1 s doubled, none after the last
    assert slept == pytest.approx([0.2, 0.4, 0.8][:(attempts or 3) - 1])


def test_a_server_that_never_answers_fails_the_connect_after_5_seconds_instead_of_hanging():
    """Without a timeout aio-pika waits for the AMQP handshake for ever."""
    connections, waited = run(silent_connect(connect, URL, "after 1 attempts: "), timeout=30)
    assert connections == 1 and 5.0 <= waited < 6.0, waited


def test_connect_refuses_fewer_than_one_attempt_by_name():
    with pytest.raises(ValueError, match="^attempts must be at least 1, not 0$"):
        run(connect("amqp://guest:guest@127.0.0.1:1/", attempts=0))
