"""Kafka consumer groups (aiokafka against Tansu): the demo, and commits that never skip."""

from __future__ import annotations

import uuid

from snippets.messaging.message_queues_kafka import connect, main
from tests.messaging.conftest import run
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints_bar_the_delivery_count(
        kafka_server, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "2000")
    run(main())
    assert capsys.readouterr().out == EXPECTED.replace("('entry-8', 2)", "('entry-8', None)")


def test_acking_later_records_commits_nothing_past_an_unacknowledged_one(kafka_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def read(group_member: str, ack: str) -> list[bytes]:
        broker = await connect(kafka_server.url, partitions=1, session_timeout_ms=2000)
        consumer = await broker.consumer(topic, "coaches", group_member)
        got = []
        while len(got) < 3:
            batch = await consumer.receive(max_messages=3 - len(got), timeout=5)
            assert batch, "the records did not arrive"
            got += batch
        await consumer.ack(got[1:] if ack == "later ones" else got)
        await consumer.close()
        extra_reader = await broker.consumer(topic, "coaches", group_member + "-check")
        extra = await extra_reader.receive(timeout=3)
        await extra_reader.close()
        await broker.close()
        return [m.body for m in got], [m.body for m in extra]

    async def publish() -> None:
        broker = await connect(kafka_server.url, partitions=1)
        for n in range(3):
            await broker.publish(topic, f"entry-{n}".encode())
        await broker.close()

    run(publish())
    got, extra = run(read("first", ack="later ones"))
    assert got == [b"entry-0", b"entry-1", b"entry-2"]
    assert extra == got  # entry-0 was not acked, so nothing was committed
