"""Competing consumers and fan-out on Kafka consumer groups (aiokafka).

A topic is a partitioned log. A group is a Kafka consumer group: every group
reads the whole log, from the earliest retained record, and inside a group
each partition belongs to one consumer at a time, so at most as many
consumers as partitions do work. Acknowledging commits the group's offset,
which is a position, not a per-message flag: committing offset 8 settles 0
to 7. So ``ack`` commits only up to the first record of each partition that
is not yet acknowledged. A consumer that leaves or dies hands its partitions
to the others, who resume from the committed offsets. When a consumer joins
or leaves, the group rebalances: just before, each member commits what it
acknowledged on the partitions it is about to lose and forgets the records it
still holds there, which are read again from the committed offset. Point it
at a Kafka cluster with ``KAFKA_BOOTSTRAP`` (``host:port``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from dataclasses import dataclass

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError

log = logging.getLogger("kafka_queue")
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024
TOPIC_EXISTS = 36


@dataclass(frozen=True, slots=True)
class Message:
    """One record: ``partition:offset``, the payload, and ``None`` deliveries
    (Kafka does not count them)."""

    id: str
    body: bytes
    deliveries: int | None


def check(topic: str, body: bytes | None = None, max_body: int = MAX_BODY) -> None:
    """Refuse a malformed topic or an oversized or non-bytes body, naming the problem."""
    if not isinstance(topic, str) or not NAME.fullmatch(topic):
        raise ValueError(f"invalid name {topic!r}: use dotted lowercase words like 'coaching.entries'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"message body must be bytes, not {type(body).__name__}")
    if body is not None and len(body) > max_body:
        raise ValueError(f"message of {len(body)} bytes exceeds the {max_body}-byte limit")


class KafkaBroker:
    """Partitioned topics, consumer groups, offsets committed on acknowledgement.

    Args:
        bootstrap: ``host:port`` of a Kafka-protocol broker.
        partitions: partitions of each topic this broker creates.
        session_timeout_ms: how long a silent consumer keeps its partitions.
            Apache Kafka refuses less than 6000 by default; Tansu joins a group
            after half of it, so the tests use 2000.
    """

    def __init__(self, bootstrap: str, producer: AIOKafkaProducer, *, partitions: int = 3,
                 session_timeout_ms: int = 6000, max_body: int = MAX_BODY) -> None:
        self.bootstrap, self.producer, self.partitions = bootstrap, producer, partitions
        self.session_timeout_ms, self.max_body = session_timeout_ms, max_body
        self._topics: set[str] = set()

    async def _topic(self, topic: str) -> None:
        if topic in self._topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            reply = await admin.create_topics([NewTopic(topic, self.partitions, 1)])
        finally:
            await admin.close()
        for name, code, message in reply.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise RuntimeError(f"cannot create topic {name!r}: error {code} {message}")
        self._topics.add(topic)

    async def subscribe(self, topic: str, group: str) -> None:
        """Create the topic; a Kafka group needs no declaring, it reads from the start."""
        check(topic)
        check(group)
        await self._topic(topic)

    async def publish(self, topic: str, body: bytes, key: bytes | None = None) -> str:
        """Append ``body`` (records with one key keep their order); return ``partition:offset``."""
        check(topic, body, self.max_body)
        await self._topic(topic)
        record = await self.producer.send_and_wait(topic, body, key=key)
        return f"{record.partition}:{record.offset}"

    async def publish_many(self, topic: str, bodies: list[bytes],
                           key: bytes | None = None) -> list[str]:
        """Queue several records in the producer's batches, then wait for all of them."""
        for body in bodies:
            check(topic, body, self.max_body)
        await self._topic(topic)
        pending = [await self.producer.send(topic, body, key=key) for body in bodies]
        records = await asyncio.gather(*pending)
        return [f"{r.partition}:{r.offset}" for r in records]

    async def consumer(self, topic: str, group: str, name: str) -> KafkaConsumer:
        """Join ``group`` as ``name``; offsets are committed only by ``ack``."""
        await self.subscribe(topic, group)
        client = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, client_id=name,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(self.session_timeout_ms // 4, 100),
            fetch_max_wait_ms=20)  # a waiting fetch on Tansu is not woken by new data
        consumer = KafkaConsumer(client, name)
        client.subscribe([topic], listener=consumer)  # told before partitions move
        await client.start()
        return consumer

    async def close(self) -> None:
        """Flush and stop the producer."""
        await self.producer.stop()


class KafkaConsumer(ConsumerRebalanceListener):
    """Fetches records and commits, per partition, the acknowledged prefix.

    It is also the group's rebalance listener: ``aiokafka`` calls
    ``on_partitions_revoked`` before partitions move to another member.
    """

    def __init__(self, client: AIOKafkaConsumer, name: str) -> None:
        self.client, self.name = client, name
        self._outstanding: dict[TopicPartition, dict[int, bool]] = {}

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Fetch up to ``max_messages``; wait at most ``timeout`` s."""
        batches = await self.client.getmany(timeout_ms=int(timeout * 1000),
                                            max_records=max_messages)
        received = []
        for tp in sorted(batches, key=lambda t: t.partition):
            outstanding = self._outstanding.setdefault(tp, {})
            for record in batches[tp]:
                outstanding[record.offset] = False
                received.append(Message(f"{tp.partition}:{record.offset}", record.value, None))
        return received

    # --8<-- [start:ack]
    async def ack(self, messages: list[Message]) -> None:
        """Mark ``messages`` handled and commit each owned partition's acknowledged prefix.

        A message whose partition was revoked since it was received is no
        longer tracked: acknowledging it does nothing, and it is delivered
        again from the committed offset.
        """
        for message in messages:
            partition, offset = map(int, message.id.split(":"))
            for tp, outstanding in self._outstanding.items():
                if tp.partition == partition and offset in outstanding:
                    outstanding[offset] = True
        await self._commit(list(self._outstanding))

    async def _commit(self, partitions: list[TopicPartition]) -> None:
        """Commit each partition up to its first record not yet acknowledged; forget
        the committed records only once Kafka has taken the commit."""
        plan = {}
        for tp in partitions:
            outstanding = self._outstanding[tp]
            done = 0
            for offset in sorted(outstanding):
                if not outstanding[offset]:
                    break
                done = offset + 1  # the offset of the next record to read
            if done:
                plan[tp] = (outstanding, done)
        if not plan:
            return
        try:
            await self.client.commit({tp: done for tp, (_, done) in plan.items()})
        except CommitFailedError as error:  # the group moved on: keep the acks, retry later
            log.warning("%s: commit failed after a rebalance: %s", self.name, error)
            return
        for outstanding, done in plan.values():
            for offset in [o for o in outstanding if o < done]:
                del outstanding[offset]
    # --8<-- [end:ack]

    # --8<-- [start:rebalance]
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: commit what was acknowledged on ``revoked``, then forget
        their records; those not yet committed are read again by the next owner."""
        try:  # the partitions are still ours until this returns
            await self._commit([tp for tp in revoked if tp in self._outstanding])
        finally:  # what is left is read again, from the committed offset
            self._outstanding = {tp: outstanding for tp, outstanding
                                 in self._outstanding.items() if tp not in revoked}

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: nothing to do, reading resumes at the committed offsets."""
    # --8<-- [end:rebalance]

    async def close(self) -> None:
        """Leave the group without committing; the partitions move to the others."""
        await self.client.stop()


async def connect(bootstrap: str | None = None, *, attempts: int = 3, idempotent: bool = False,
                  **options: int) -> KafkaBroker:
    """Start a producer on ``bootstrap`` (default ``KAFKA_BOOTSTRAP``), or fail clearly.

    Turn ``idempotent`` on against Apache Kafka: the broker then drops a batch
    the producer retried after a lost reply. It is off by default because
    Tansu 0.6, which the tests run against, answers the ``InitProducerId`` v0
    request that aiokafka sends (the only version it knows) with error -1,
    ``UNKNOWN_SERVER_ERROR``; a refusal raises ``RuntimeError``.

    Raises:
        ValueError: ``attempts`` is below 1.
        ConnectionError: no broker answered in ``attempts`` tries.
    """
    bootstrap = bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    if "session_timeout_ms" not in options and "KAFKA_SESSION_TIMEOUT_MS" in os.environ:
        options["session_timeout_ms"] = int(os.environ["KAFKA_SESSION_TIMEOUT_MS"])
    for attempt in range(1, attempts + 1):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=idempotent, request_timeout_ms=5000)
        try:
            await producer.start()
            return KafkaBroker(bootstrap, producer, **options)
        except KafkaConnectionError as error:
            await producer.stop()
            if attempt == attempts:
                raise ConnectionError(f"cannot reach Kafka at {bootstrap} after {attempts} "
                                      f"attempts: {error}") from error
            await asyncio.sleep(0.1 * 2**attempt)
        except KafkaError as error:  # an answer, not a network problem: do not retry
            await producer.stop()
            raise RuntimeError(f"Kafka at {bootstrap} refused to start the producer "
                               f"(idempotent={idempotent}): {error!r}") from error
    raise AssertionError("unreachable")  # pragma: no cover


async def main() -> int:
    """Six entries of one writer (one key, one partition): shared, fanned out, redelivered."""
    try:
        broker = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet KAFKA_BOOTSTRAP to a Kafka broker you may write to.", file=sys.stderr)
        return 1
    topic = f"coaching.entries.{os.getpid()}"  # a fresh log on a reused cluster
    await broker.subscribe(topic, "coaches")
    for n in range(1, 7):
        await broker.publish(topic, f"entry-{n}".encode(), key=b"ana")

    reflection = await broker.consumer(topic, "reflection", "evening")
    got: list[Message] = []
    while len(got) < 6:
        got += await reflection.receive(max_messages=10, timeout=5.0)
    await reflection.ack(got)
    print(f"reflection: {', '.join(m.body.decode() for m in got)}")

    coaches = [await broker.consumer(topic, "coaches", n) for n in ("coach-a", "coach-b")]
    handled: list[str] = []
    while len(handled) < 6:
        for coach in coaches:
            batch = await coach.receive(max_messages=2, timeout=1.0)
            handled += [m.body.decode() for m in batch]
            await coach.ack(batch)
    print(f"coaches   : {len(handled)} handled, {len(set(handled))} distinct")
    for coach in coaches:
        await coach.close()

    crashing = await broker.consumer(topic, "coaches", "coach-c")
    await broker.publish(topic, b"entry-7", key=b"ana")
    await broker.publish(topic, b"entry-8", key=b"ana")
    batch = []
    while len(batch) < 2:
        batch += await crashing.receive(max_messages=2 - len(batch), timeout=5.0)
    await crashing.ack(batch[:1])
    await crashing.close()  # leaves holding entry-8, uncommitted
    survivor = await broker.consumer(topic, "coaches", "coach-d")
    again = await survivor.receive(max_messages=2, timeout=10.0)
    await survivor.ack(again)
    print(f"crash     : acked {batch[0].body.decode()}, "
          f"redelivered {[(m.body.decode(), m.deliveries) for m in again]}")
    for consumer in (survivor, reflection):
        await consumer.close()
    await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
