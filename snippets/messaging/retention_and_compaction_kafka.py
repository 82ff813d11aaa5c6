"""A compacted topic on the Kafka protocol: ``cleanup.policy=compact``, tombstones, replay.

Each user's current goal is a record keyed by the user; a record with no
value (a *tombstone*) deletes the key. With ``cleanup.policy=compact`` Apache
Kafka's log cleaner removes, in the background, records of a key that a
later record supersedes, but only in closed segments: the active segment is
never compacted, and a tombstone stays for ``delete.retention.ms``. So a
consumer that replays the topic may see several records per key and must
fold them, the last one winning. Tansu 0.6 (memory storage), which this
site's tests use, stores and reports the setting but compacts nothing; the
fold gives the same table either way. Point it at a Kafka cluster with
``KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

COMPACTED = {"cleanup.policy": "compact", "delete.retention.ms": "86400000",
             "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.5"}


async def create_compacted(bootstrap: str, topic: str) -> dict[str, str]:
    """Create ``topic`` (one partition) compacted; return its settings as the broker reports."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        reply = await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=COMPACTED)])
        for name, code, message in reply.topic_errors:
            if code != 0:
                raise RuntimeError(f"cannot create topic {name!r}: error {code} {message}")
        [described] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = described.resources
    return {entry[0]: entry[1] for entry in resource[4]}


async def write(bootstrap: str, topic: str, changes: list[tuple[str, str | None]]) -> None:
    """Write ``(key, value)`` records in order; ``None`` writes a tombstone."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in changes:
            await producer.send_and_wait(topic, None if value is None else value.encode(),
                                         key=key.encode())
    finally:
        await producer.stop()


# --8<-- [start:replay]
async def replay(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    """Read the whole partition from its earliest offset; fold it into the latest
    value per key (a tombstone removes the key). Returns (records read, table)."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=20)  # no group: nothing is committed
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        read, table = 0, {}
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                read += 1
                if record.value is None:
                    table.pop(record.key.decode(), None)
                else:
                    table[record.key.decode()] = record.value.decode()
    finally:
        await consumer.stop()
    return read, table
# --8<-- [end:replay]


async def main() -> int:
    """Goal changes for four users, one deleted, replayed into the current goals."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = f"coaching.goals.{os.getpid()}"  # a fresh topic on a reused cluster
    try:
        settings = await create_compacted(bootstrap, topic)
    except KafkaConnectionError as error:
        print(f"cannot reach Kafka at {bootstrap}: {error}\n"
              "Set KAFKA_BOOTSTRAP to a Kafka broker you may write to.", file=sys.stderr)
        return 1
    print(f"topic     : cleanup.policy={settings['cleanup.policy']} (as the broker reports it)")
    changes = [("ana", "run 5 km"), ("dan", "walk daily"), ("ben", "sleep 8 h"),
               ("ana", "run 10 km"), ("cat", "read daily"), ("ben", None),
               ("ana", "run 21 km"), ("cat", "read weekly")]
    await write(bootstrap, topic, changes)
    read, table = await replay(bootstrap, topic)
    print(f"replay    : {read} of {len(changes)} records read back from the earliest offset")
    print(f"table     : {sorted(table.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
