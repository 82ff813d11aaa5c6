"""PostgreSQL as a queue: the demo, many consumers at once, rows only for subscribed
groups, and a server restart mid-stream that loses no committed row and undoes no ack."""

from __future__ import annotations

import asyncio
import signal

import psycopg
import pytest

from snippets.messaging.message_queues_postgres import connect, main
from tests.messaging.conftest import run
from tests.messaging.support import drain
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints(postgres_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    run(main())
    assert capsys.readouterr().out == EXPECTED


def test_eight_consumers_at_once_never_lease_the_same_row(postgres_db):
    async def scenario():
        broker = await connect(postgres_db)
        consumers = [await broker.consumer("coaching.entries", "coaches", f"c{i}")
                     for i in range(8)]
        for n in range(200):
            await broker.publish("coaching.entries", f"job-{n}".encode())
        batches = await asyncio.gather(*(c.receive(max_messages=200, timeout=0)
                                         for c in consumers))  # all at the same moment
        for consumer, batch in zip(consumers, batches):
            await consumer.ack(batch)
            await consumer.close()
        idle = await broker.consumer("coaching.entries", "coaches", "idle")
        await idle.close()  # holds nothing: nothing to hand back
        left = await (await broker.conn.execute("SELECT count(*) FROM mq_messages")).fetchone()
        await broker.close()
        return [m.body for batch in batches for m in batch], left[0]

    bodies, left = run(scenario())
    assert len(bodies) == len(set(bodies)) == 200 and left == 0


def test_a_publish_stores_one_row_per_subscribed_group_and_none_without_groups(postgres_db):
    async def scenario():
        broker = await connect(postgres_db)
        nobody = await broker.publish("coaching.entries", b"lost")
        for group in ("coaches", "reflection", "goals"):
            await broker.subscribe("coaching.entries", group)
        three = await broker.publish("coaching.entries", b"kept")
        await broker.close()
        return nobody, three

    assert run(scenario()) == (0, 3)


async def stream(broker, topic: str, first: int, confirmed: list[int],
                 flowing: asyncio.Event) -> int:
    """Publish ``entry-<n>`` one at a time, each committed, until a publish fails.

    Appends what was committed to ``confirmed``, sets ``flowing`` after 20, and
    returns the number whose publish failed: its commit may or may not have
    happened, so an at-least-once producer sends it again.
    """
    n = first
    while True:
        try:
            await asyncio.wait_for(broker.publish(topic, f"entry-{n}".encode()), 10)
        except psycopg.OperationalError:  # the server terminates the connection
            return n
        confirmed.append(n)
        if len(confirmed) == 20:
            flowing.set()
        n += 1
        await asyncio.sleep(0.005)  # a steady stream, not a flood, while the server stops


@pytest.mark.parametrize("shutdown", [signal.SIGINT, signal.SIGQUIT, signal.SIGKILL],
                         ids=["fast shutdown", "immediate shutdown, recovery from the WAL",
                              "SIGKILL of every server process, recovery from the WAL"])
def test_committed_messages_survive_a_postgres_restart_mid_stream_and_acks_hold(
        postgres_factory, shutdown):
    """Stop the server while a publisher streams and a consumer holds leased rows, start it
    on the same data directory, and drain. SIGQUIT skips the shutdown checkpoint, so the
    server must replay its write-ahead log, as after a crash; SIGKILL to the postmaster
    and all its backends is the crash itself."""
    engine = postgres_factory()
    engine.stop_signal = shutdown
    stop = engine.kill if shutdown == signal.SIGKILL else engine.stop
    topic = "coaching.entries"

    async def started_at(url: str):
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return (await (await conn.execute("SELECT pg_postmaster_start_time()")).fetchone())[0]

    async def scenario():
        first_start = await started_at(engine.url)
        broker = await connect(engine.url, lease=0.5)
        consumer = await broker.consumer(topic, "coaches", "first")
        for n in range(10):
            await broker.publish(topic, f"entry-{n}".encode())
        held = await consumer.receive(max_messages=6)
        await consumer.ack(held[:4])  # a DELETE that has returned: committed
        confirmed: list[int] = []
        flowing = asyncio.Event()
        publisher = asyncio.create_task(stream(broker, topic, 10, confirmed, flowing))
        await flowing.wait()
        await asyncio.to_thread(stop)  # mid-stream
        failed = await publisher
        await asyncio.to_thread(engine.start)  # the same cluster, the same data directory
        restarted = await started_at(engine.url) != first_start

        broker = await connect(engine.url, lease=0.5)
        for n in range(failed, failed + 5):  # the producer resends what was not confirmed
            await broker.publish(topic, f"entry-{n}".encode())
        survivor = await broker.consumer(topic, "coaches", "survivor")
        drained = await drain(survivor, {f"entry-{n}" for n in range(4, failed + 5)})
        await survivor.close()
        await broker.close()
        return held, failed, drained, restarted

    held, failed, drained, restarted = run(scenario(), timeout=90)
    bodies = [m.body.decode() for m in drained]
    assert restarted
    recovered = "automatic recovery in progress" in engine.log_path.read_text()
    assert recovered == (shutdown != signal.SIGINT)
    assert set(bodies) == {f"entry-{n}" for n in range(4, failed + 5)}  # nothing committed lost
    assert not {"entry-0", "entry-1", "entry-2", "entry-3"} & set(bodies)  # acks held
    duplicates = {b for b in bodies if bodies.count(b) > 1}
    assert duplicates <= {f"entry-{failed}"}  # only the unconfirmed one, resent
    deliveries = {m.body.decode(): m.deliveries for m in drained}
    assert [deliveries[m.body.decode()] for m in held[4:]] == [2, 2]  # their lease ran out
    assert deliveries["entry-9"] == 1
