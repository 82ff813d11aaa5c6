"""RabbitMQ queues: the demo, and prefetch as the bound on what one consumer holds."""

from __future__ import annotations

import uuid

from snippets.messaging.message_queues_rabbitmq import connect, main
from tests.messaging.conftest import run
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    run(main())
    assert capsys.readouterr().out == EXPECTED


def test_prefetch_bounds_what_a_stuck_consumer_holds_so_the_others_get_the_rest(rabbitmq_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url, prefetch=2)
        stuck = await broker.consumer(topic, "coaches", "stuck")
        healthy = await broker.consumer(topic, "coaches", "healthy")
        for n in range(10):
            await broker.publish(topic, f"entry-{n}".encode())
        held = await stuck.receive(max_messages=10, timeout=2)  # never acks
        done = []
        while len(done) < 10 - len(held):
            batch = await healthy.receive(max_messages=10, timeout=2)
            assert batch, "the healthy consumer starved"
            await healthy.ack(batch)
            done += batch
        await broker.close()
        return held, done

    held, done = run(scenario())
    assert len(held) <= 2
    assert sorted(m.body for m in held + done) == sorted(f"entry-{n}".encode() for n in range(10))


def test_a_message_requeued_by_a_closing_channel_is_flagged_redelivered(rabbitmq_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        first = await broker.consumer(topic, "coaches", "first")
        await broker.publish(topic, b"entry-1")
        [held] = await first.receive(timeout=5)
        await first.close()
        second = await broker.consumer(topic, "coaches", "second")
        [again] = await second.receive(timeout=5)
        await second.ack([again, again])  # a second ack of the same message is skipped
        await broker.close()
        return held, again

    held, again = run(scenario())
    assert (held.deliveries, again.deliveries, again.body) == (1, 2, b"entry-1")
