"""Partitioning by key on Kafka: one user's entries stay in order across a consumer group.

The producer hashes each record's key (murmur2, as the Java client does)
modulo the topic's partition count, so all of one user's entries land in one
partition, and a partition is read by one consumer of the group at a time.
Different users spread over partitions and are handled in parallel. The
modulo is also the catch: add partitions and most keys map elsewhere, so
records written before and after the change may be read out of order.
Point it at a Kafka cluster with ``KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    if partitions < 1:
        raise ValueError(f"need at least 1 partition, got {partitions}")
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def publish_keyed(bootstrap: str, topic: str, writes: list[tuple[str, str]]) -> dict[str, int]:
    """Send ``(user, text)`` records keyed by user; return each user's partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    placed: dict[str, int] = {}
    try:
        for user, text in writes:
            record = await producer.send_and_wait(topic, text.encode(), key=user.encode())
            placed[user] = record.partition
    finally:
        await producer.stop()
    return placed


async def settled(members: list[AIOKafkaConsumer], timeout: float) -> None:
    """Wait until every member owns partitions and none is owned twice (one generation).

    With more members than partitions this never happens: the extra members idle.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        owned = [m.assignment() for m in members]
        if all(owned) and len(set().union(*owned)) == sum(map(len, owned)):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the group did not settle within {timeout} s")


async def consume_group(bootstrap: str, topic: str, group: str, consumers: int, total: int,
                        timeout: float = 30.0, session_timeout_ms: int = 6000
                        ) -> dict[str, list[tuple[str, str]]]:
    """Read ``total`` records with ``consumers`` members of one group.

    Returns, per member, the ``(user, text)`` records it handled, in order.
    """
    members = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                client_id=f"coach-{n}", auto_offset_reset="earliest",
                                session_timeout_ms=session_timeout_ms,
                                heartbeat_interval_ms=max(session_timeout_ms // 4, 100),
                                fetch_max_wait_ms=20) for n in range(consumers)]
    handled: dict[str, list[tuple[str, str]]] = defaultdict(list)
    loop = asyncio.get_running_loop()

    async def run(member: AIOKafkaConsumer, name: str, deadline: float) -> None:
        while sum(map(len, handled.values())) < total and loop.time() < deadline:
            batches = await member.getmany(timeout_ms=200)
            for records in batches.values():
                handled[name] += [(r.key.decode(), r.value.decode()) for r in records]

    try:
        for member in members:
            await member.start()
        await settled(members, timeout)
        deadline = loop.time() + timeout
        await asyncio.gather(*(run(m, f"coach-{n}", deadline) for n, m in enumerate(members)))
    finally:
        for member in members:
            await member.stop()
    return dict(handled)


async def main() -> int:
    """Six entries of three users on a 3-partition topic, read by a group of two."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    session = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
    topic = f"coaching.entries.keyed.{os.getpid()}"
    writes = [("ana", "ran 3 km"), ("dan", "slept badly"), ("ana", "set goal 10 km"),
              ("zoe", "meditated"), ("dan", "walked"), ("ana", "ran 5 km")]
    try:
        await create_topic(bootstrap, topic, 3)
    except KafkaConnectionError as error:
        print(f"cannot reach Kafka at {bootstrap}: {error}\n"
              "Set KAFKA_BOOTSTRAP to a Kafka broker you may write to.", file=sys.stderr)
        return 1
    placed = await publish_keyed(bootstrap, topic, writes)
    handled = await consume_group(bootstrap, topic, "coaches", 2, len(writes),
                                  session_timeout_ms=session)
    for user in sorted(placed):
        readers = {name for name, records in handled.items() if any(u == user for u, _ in records)}
        texts = [t for records in handled.values() for u, t in records if u == user]
        print(f"{user}: partition {placed[user]} (predicted {partition_for(user, 3)}), "
              f"{len(readers)} reader, in order: {texts}")
    keys = [f"user-{n}" for n in range(10_000)]
    moved = sum(partition_for(k, 3) != partition_for(k, 4) for k in keys) / len(keys)
    print(f"3 -> 4 partitions would move {moved:.0%} of keys")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
