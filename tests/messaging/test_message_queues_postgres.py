"""PostgreSQL as a queue: the demo, many consumers at once, and rows only for subscribed groups."""

from __future__ import annotations

import asyncio

from snippets.messaging.message_queues_postgres import connect, main
from tests.messaging.conftest import run
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
