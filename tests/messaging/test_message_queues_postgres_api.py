"""The PostgreSQL queue's own promises, beyond the shared contract: its defaults (a 30 s
lease, batches of 10), the body limit's boundary, what a consumer hands back when it
closes (also after losing its connection), how a waiting consumer wakes, and how
``connect`` retries: how many attempts, how long between them, and where it looks."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import psycopg
import pytest

from snippets.messaging import message_queues_postgres as mq
from snippets.messaging.message_queues_postgres import connect
from tests.messaging.conftest import run
from tests.messaging.support import FakeServer

TOPIC = "coaching.entries"


async def clock(broker: mq.PostgresBroker) -> dt.datetime:
    """The database server's clock right now (not the transaction's start)."""
    return (await (await broker.conn.execute("SELECT clock_timestamp()")).fetchone())[0]


async def visible_at(broker: mq.PostgresBroker, messages: list[mq.Message]) -> list[dt.datetime]:
    rows = await broker.conn.execute(
        "SELECT visible_at FROM mq_messages WHERE id = ANY(%s) ORDER BY id",
        ([int(m.id) for m in messages],))
    return [row[0] for row in await rows.fetchall()]


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(postgres_db):
    async def scenario():
        broker = await connect(postgres_db, max_body=16)  # the option reaches the broker
        consumer = await broker.consumer(TOPIC, "coaches", "reader")
        stored = await broker.publish(TOPIC, b"x" * 16)
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish(TOPIC, b"y" * 17)
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish_many(TOPIC, [b"z", b"y" * 17])
        got = await consumer.receive(max_messages=10, timeout=0)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return stored, [m.body for m in got]

    assert run(scenario()) == (1, [b"x" * 16])


def test_by_default_a_lease_lasts_30_seconds_and_a_receive_takes_at_most_10(postgres_db):
    async def scenario():
        broker = await connect(postgres_db)  # no options: the defaults
        consumer = await broker.consumer(TOPIC, "coaches", "reader")
        await broker.publish_many(TOPIC, [f"entry-{n}".encode() for n in range(12)])
        before = await clock(broker)
        got = await consumer.receive()
        after = await clock(broker)
        until = await visible_at(broker, got)
        rest = await consumer.receive(timeout=0)
        await consumer.ack(got + rest)
        await consumer.close()
        await broker.close()
        return got, rest, until, before, after

    got, rest, until, before, after = run(scenario())
    assert [m.body for m in got] == [f"entry-{n}".encode() for n in range(10)]
    assert [m.body for m in rest] == [b"entry-10", b"entry-11"]
    lease = dt.timedelta(seconds=30)  # counted from the lease's statement, between the clocks
    assert all(before + lease <= t <= after + lease for t in until), (before, until, after)


def test_a_consumer_that_closes_hands_back_what_it_holds_at_once_not_at_lease_expiry(
        postgres_db):
    async def scenario():
        broker = await connect(postgres_db, lease=600.0)  # expiry would take ten minutes
        first = await broker.consumer(TOPIC, "coaches", "first")
        await broker.publish_many(TOPIC, [b"entry-1", b"entry-2", b"entry-3"])
        held = await first.receive(timeout=0)
        await first.ack(held[:1])
        await first.close()
        second = await broker.consumer(TOPIC, "coaches", "second")
        again = await second.receive(timeout=0)  # one query: no waiting for anything
        await second.ack(again)
        await second.close()
        await broker.close()
        return held, again

    held, again = run(scenario())
    assert [m.body for m in held] == [b"entry-1", b"entry-2", b"entry-3"]
    assert [(m.body, m.deliveries) for m in again] == [(b"entry-2", 2), (b"entry-3", 2)]


def test_a_consumer_whose_connection_died_closes_without_error_and_its_rows_come_back(
        postgres_db):
    """The server ends the consumer's session (a restart, a failover, an admin): its next
    receive fails, and close() after that must not raise a second error over the first.
    What it held comes back when the lease runs out."""
    async def scenario():
        broker = await connect(postgres_db, lease=0.5)
        doomed = await broker.consumer(TOPIC, "coaches", "doomed")
        await broker.publish_many(TOPIC, [b"entry-1", b"entry-2"])
        held = await doomed.receive(timeout=0)
        await broker.conn.execute("SELECT pg_terminate_backend(%s)",
                                  (doomed.conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            await doomed.receive(timeout=0)
        await doomed.close()
        survivor = await broker.consumer(TOPIC, "coaches", "survivor")
        again: list[mq.Message] = []
        while len(again) < 2:
            again += await survivor.receive(timeout=5.0)
        await survivor.ack(again)
        await survivor.close()
        await broker.close()
        return held, again

    held, again = run(scenario())
    assert [m.body for m in held] == [b"entry-1", b"entry-2"]
    assert [(m.body, m.deliveries) for m in again] == [(b"entry-1", 2), (b"entry-2", 2)]


def test_an_empty_receive_waits_its_whole_timeout_and_returns_nothing(postgres_db):
    async def scenario():
        broker = await connect(postgres_db)
        consumer = await broker.consumer(TOPIC, "coaches", "reader")
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await consumer.receive(timeout=0.5)
        waited = loop.time() - start
        await consumer.close()
        await broker.close()
        return got, waited

    got, waited = run(scenario())
    assert got == [] and waited >= 0.5


def test_a_waiting_consumer_is_woken_by_a_publish_not_by_its_poll(postgres_db):
    """With a ten-minute lease the consumer polls every 150 s; a message published while
    it waits arrives at once, because the NOTIFY of the publish wakes it."""
    async def scenario():
        broker = await connect(postgres_db, lease=600.0)
        consumer = await broker.consumer(TOPIC, "coaches", "reader")
        waiting = asyncio.create_task(consumer.receive(timeout=300.0))
        pid = consumer.conn.info.backend_pid
        while True:  # until its first lease has come back empty: it is waiting now
            state, query = await (await broker.conn.execute(
                "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,))).fetchone()
            if (state == "idle" and "SKIP LOCKED" in query) or waiting.done():
                break
            await asyncio.sleep(0.01)
        await broker.publish(TOPIC, b"entry-1")
        got = await asyncio.wait_for(waiting, 30)  # a safety net: it takes milliseconds
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return got

    assert [m.body for m in run(scenario())] == [b"entry-1"]


def test_without_a_url_connect_tries_the_local_default_three_times_and_names_it(monkeypatch):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5432)) == 0:
            pytest.skip("something listens on 127.0.0.1:5432: the default would reach it")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    default = "postgresql://postgres@127.0.0.1:5432/postgres"
    with pytest.raises(ConnectionError,
                       match=f"cannot reach PostgreSQL at {default} after 3 attempts: "):
        run(connect(), timeout=30)


URL = "postgresql://postgres@127.0.0.1:{port}/x?sslmode=disable&gssencmode=disable"


def test_connect_makes_exactly_its_attempts_and_backs_off_exponentially_between_them(
        monkeypatch):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: object) -> object:
        slept.append(delay)
        return await real_sleep(0, *args)

    async def scenario():
        closing = FakeServer(answer=True, url=URL)
        async with closing as url:
            monkeypatch.setattr(mq.asyncio, "sleep", sleep)
            try:
                with pytest.raises(ConnectionError,
                                   match=r"cannot reach PostgreSQL at .* after 4 attempts: "):
                    await connect(url, attempts=4)
            finally:
                monkeypatch.undo()
        return closing.connections

    connections = run(scenario())
    assert connections == 4
    assert slept == pytest.approx([0.2, 0.4, 0.8])  # 0.1 s doubled, none after the last


def test_a_server_that_never_answers_fails_the_connect_instead_of_hanging():
    async def scenario():
        silent = FakeServer(answer=False, url=URL)
        async with silent as url:
            with pytest.raises(ConnectionError, match="after 1 attempts"):
                await connect(url, attempts=1)
        return silent.connections

    assert run(scenario(), timeout=30) == 1  # psycopg waits connect_timeout (2 s), not forever


def test_connect_refuses_fewer_than_one_attempt_by_name(postgres_db):
    with pytest.raises(ValueError, match="attempts must be at least 1, not 0"):
        run(connect(postgres_db, attempts=0))
