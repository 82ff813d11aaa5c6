"""Ordered groups on Kafka: per-key order inside a partition, keys in parallel, safe commits.

A Kafka partition is already a sequential convoy: one consumer of the group
reads it, in offset order. But then one slow record holds up every key behind
it, and parallelism stops at the partition count. This consumer reads each
partition in order and hands every record to a *lane* for its key: records of
one key run one at a time, in offset order; records of different keys run at
the same time, up to ``max_in_flight`` records taken and not yet finished.

Offsets now finish out of order, so it commits only up to the lowest offset
not yet finished. After a crash, that record and everything after it is read
again: nothing unfinished is skipped, and what had finished after it runs a
second time (handlers must be idempotent). A record that fails
``max_attempts`` times is *parked*, together with every later record of its
key, on the topic ``<topic>.parked``. Before it handles the first records of
a partition newly assigned to it (at start, or taken over from another member
of the group), the consumer reads that topic again to learn which keys are
parked, so a restarted consumer, or one that takes a partition over, keeps
parking them. It also learns which records are there already (their
``x-parked-from`` header): one parked before a crash, but not yet committed,
is read again and finished without being run or parked a second time.
Records without a key share one lane per partition. Point it at a Kafka
cluster with ``KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

Handler = Callable[[ConsumerRecord], Awaitable[None]]


# --8<-- [start:tracker]
class OffsetTracker:
    """Per partition, the offsets taken and not finished yet, and the next one to read."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = defaultdict(set)
        self._next: dict[TopicPartition, int] = {}

    def take(self, tp: TopicPartition, offset: int) -> None:
        if offset < self._next.get(tp, 0):
            raise ValueError(f"{tp.topic}[{tp.partition}]: offset {offset} taken after "
                             f"{self._next[tp] - 1}")
        self._open[tp].add(offset)
        self._next[tp] = offset + 1

    def done(self, tp: TopicPartition, offset: int) -> None:
        if offset not in self._open[tp]:
            raise KeyError(f"{tp.topic}[{tp.partition}]: offset {offset} is not in flight")
        self._open[tp].discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        """What to commit: the lowest unfinished offset, or the next to read if none is."""
        return {tp: min(self._open[tp], default=after) for tp, after in self._next.items()}

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
# --8<-- [end:tracker]


async def create_topics(bootstrap: str, topics: list[str], partitions: int = 1) -> None:
    """Create ``topics`` (a topic that exists already is left as it is)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the start to its current end, without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic)
                                                         or {0})]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


def origin(record: ConsumerRecord) -> bytes:
    """Where a record came from, ``topic/partition/offset``: its ``x-parked-from`` header."""
    return f"{record.topic}/{record.partition}/{record.offset}".encode()


class KeyOrderedConsumer:
    """A member of consumer group ``group`` on ``topic`` that runs keys in parallel."""

    def __init__(self, bootstrap: str, topic: str, group: str, handler: Handler, *,
                 max_in_flight: int = 16, max_attempts: int = 3, backoff: float = 0.1,
                 session_timeout_ms: int = 6000) -> None:
        if max_in_flight < 1 or max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")
        self.bootstrap, self.topic, self.parked_topic = bootstrap, topic, f"{topic}.parked"
        self.handler, self.max_in_flight = handler, max_in_flight
        self.max_attempts, self.backoff = max_attempts, backoff
        self.tracker, self.parked_keys = OffsetTracker(), set[bytes | None]()
        self.parked_from = set[bytes]()  # x-parked-from of every record on the parked topic
        self.committed: dict[TopicPartition, int] = {}
        self.learned = set[TopicPartition]()  # partitions whose parked keys are known
        self._lanes: dict[tuple[TopicPartition, bytes | None], deque[ConsumerRecord]] = {}
        self._tasks: dict[tuple[TopicPartition, bytes | None], asyncio.Task[None]] = {}
        self._taken, self._finished, self._failure = 0, asyncio.Event(), None
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 4, 100), fetch_max_wait_ms=50)
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def start(self) -> None:
        """Create ``<topic>.parked`` if need be, then join the group."""
        await create_topics(self.bootstrap, [self.parked_topic])
        await self.producer.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        await self.consumer.start()

    # --8<-- [start:lanes]
    def _dispatch(self, record: ConsumerRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self.tracker.take(tp, record.offset)
        self._taken += 1
        lane = self._lanes.setdefault((tp, record.key), deque())
        lane.append(record)
        if len(lane) == 1:  # no task runs this key's lane: start one
            self._tasks[(tp, record.key)] = asyncio.create_task(self._run_lane((tp, record.key)))

    async def _run_lane(self, lane_key: tuple[TopicPartition, bytes | None]) -> None:
        tp, lane = lane_key[0], self._lanes[lane_key]
        try:
            while lane:
                record = lane[0]
                if origin(record) in self.parked_from:
                    pass  # parked before a crash, not committed: it is there already
                elif record.key in self.parked_keys:
                    await self._park(record, "an earlier record of this key is parked")
                elif (error := await self._attempt(record)) is not None:
                    self.parked_keys.add(record.key)  # before the send: nothing can overtake
                    await self._park(record, f"{type(error).__name__}: {error}")
                lane.popleft()
                self.tracker.done(tp, record.offset)
                self._taken -= 1
                self._finished.set()
        except Exception as error:  # noqa: BLE001 - cannot park: stop, commit nothing past it
            self._failure = error
        finally:
            if not lane:
                del self._lanes[lane_key], self._tasks[lane_key]
    # --8<-- [end:lanes]

    async def _attempt(self, record: ConsumerRecord) -> Exception | None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handler(record)
                return None
            except Exception as error:  # noqa: BLE001 - any failure is retried, then parked
                if attempt == self.max_attempts:
                    return error
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _park(self, record: ConsumerRecord, reason: str) -> None:
        headers = [*record.headers, ("x-parked-from", origin(record)),
                   ("x-parked-reason", reason.encode())]
        await self.producer.send_and_wait(self.parked_topic, record.value, key=record.key,
                                          headers=headers)

    async def commit(self) -> None:
        """Commit, for each partition still ours, up to its lowest unfinished offset."""
        owned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in self.tracker.committable().items()
                   if tp in owned and self.committed.get(tp) != offset}
        if offsets:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)

    async def run(self, until: Callable[[], bool]) -> None:
        """Fetch, dispatch and commit until ``until()`` is true."""
        while not until():
            if self._failure is not None:
                raise self._failure
            room = self.max_in_flight - self._taken
            if room <= 0:  # enough taken: wait for a record to finish before fetching more
                self._finished.clear()
                try:
                    async with asyncio.timeout(0.1):
                        await self._finished.wait()
                except TimeoutError:
                    pass
                await self.commit()
                continue
            batches = await self.consumer.getmany(timeout_ms=100, max_records=room)
            if not self.learned.issuperset(batches):  # a partition new to this member:
                await self.learn_parked()  # its previous owner may have parked keys
                self.learned |= set(batches)
            for records in batches.values():
                for record in records:
                    self._dispatch(record)
            await self.commit()

    async def drain(self, tps: set[TopicPartition] | None = None) -> None:
        """Wait for the lanes (of partitions ``tps``, or all) to finish what they took."""
        await asyncio.gather(*[t for (tp, _), t in list(self._tasks.items())
                               if tps is None or tp in tps])

    async def stop(self, *, drain: bool = True) -> None:
        """Leave the group; ``drain=False`` abandons work in flight, as a crash would."""
        if drain:
            await self.drain()
        else:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.commit()
        await self.consumer.stop()
        await self.producer.stop()

    async def learn_parked(self) -> None:
        """Learn the keys and records on ``<topic>.parked``: they may have been parked by
        another member, or by this one before a restart."""
        parked = await read_topic(self.bootstrap, self.parked_topic)
        self.parked_keys |= {r.key for r in parked}
        self.parked_from |= {dict(r.headers).get("x-parked-from", b"") for r in parked}


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions move to another member: finish their records and commit."""

    def __init__(self, owner: KeyOrderedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.drain(set(revoked))
        await self.owner.commit()
        self.owner.tracker.forget(set(revoked))
        self.owner.learned -= set(revoked)  # if they come back, learn the parked keys again

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass  # what was parked is learned in run(), before the first records are handled


async def publish(bootstrap: str, topic: str, entries: list[tuple[str, int]]) -> None:
    """Send ``(user, n)`` entries as records keyed by user, valued ``user-n``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for user, n in entries:
            await producer.send_and_wait(topic, f"{user}-{n}".encode(), key=user.encode())
    finally:
        await producer.stop()


async def session(bootstrap: str, topic: str, handler: Handler, total: int, timeout_ms: int
                  ) -> KeyOrderedConsumer:
    """Start a member of group ``coaches``, run until ``total`` offsets are committed, stop."""
    member = KeyOrderedConsumer(bootstrap, topic, "coaches", handler, max_in_flight=8,
                                backoff=0.0, session_timeout_ms=timeout_ms)
    await member.start()
    async with asyncio.timeout(60):
        await member.run(until=lambda: sum(member.committed.values()) >= total)
    await member.stop()
    return member


async def main() -> int:
    """Three users' entries in ONE partition, handled in parallel; Ben's second is poison."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    timeout_ms = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
    topic = f"diary.entries.{os.getpid()}"
    try:
        await create_topics(bootstrap, [topic], partitions=1)
    except KafkaConnectionError as error:
        print(f"cannot reach Kafka at {bootstrap}: {error}\n"
              "Set KAFKA_BOOTSTRAP to a Kafka broker you may write to.", file=sys.stderr)
        return 1
    await publish(bootstrap, topic, [("ana", 1), ("ben", 1), ("caro", 1), ("ana", 2),
                                     ("ben", 2), ("caro", 2), ("ana", 3), ("ben", 3)])
    handled: dict[str, list[int]] = defaultdict(list)
    together = asyncio.Barrier(3)

    async def coach(record: ConsumerRecord) -> None:
        user, n = record.value.decode().split("-")
        if n == "1":  # passes only when ana-1, ben-1 and caro-1 are all in flight
            async with asyncio.timeout(10):
                await together.wait()
        if record.value == b"ben-2":
            raise ValueError("entry text is not valid UTF-8")
        handled[user].append(int(n))

    first = await session(bootstrap, topic, coach, 8, timeout_ms)
    parked = [r.value.decode() for r in await read_topic(bootstrap, f"{topic}.parked")]
    print("ana-1, ben-1 and caro-1 met at a barrier of 3: 3 keys of 1 partition at once")
    print(f"handled {dict(sorted(handled.items()))}\nparked {parked}, "
          f"committed up to offset {sum(first.committed.values())}")

    handled.clear()
    await publish(bootstrap, topic, [("ben", 4), ("dan", 1)])
    together = asyncio.Barrier(1)  # dan-1 has no one to wait for
    restarted = await session(bootstrap, topic, coach, 10, timeout_ms)
    parked = [r.value.decode() for r in await read_topic(bootstrap, f"{topic}.parked")]
    print(f"after a restart: handled {dict(handled)}\nparked {parked}, "
          f"committed up to offset {sum(restarted.committed.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
