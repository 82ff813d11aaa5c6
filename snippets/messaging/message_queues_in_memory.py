"""Competing consumers and publish-subscribe fan-out on an in-memory broker.

A topic fans out to groups: every group gets its own copy of every message
published after it subscribed (publish-subscribe). Inside one group, each
message goes to exactly one consumer (point-to-point, competing consumers).
A received message is leased to its consumer until it is acknowledged; if
the consumer closes or the lease runs out first, the message goes back to
the group and is delivered again with ``deliveries`` raised by one.

The same four calls (``subscribe``, ``publish``, ``consumer``, then
``receive``/``ack``) exist on the Redis, RabbitMQ, NATS, PostgreSQL and
Kafka versions of this module. This one keeps everything in memory: it is
the embedded default, and a restart loses every message.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import deque
from dataclasses import dataclass

NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery: the broker's id, the payload and how often it was delivered."""

    id: str
    body: bytes
    deliveries: int


def check(topic: str, body: bytes | None = None, max_body: int = MAX_BODY) -> None:
    """Refuse a malformed topic or an oversized or non-bytes body, naming the problem."""
    if not isinstance(topic, str) or not NAME.fullmatch(topic):
        raise ValueError(f"invalid name {topic!r}: use dotted lowercase words like 'coaching.entries'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"message body must be bytes, not {type(body).__name__}")
    if body is not None and len(body) > max_body:
        raise ValueError(f"message of {len(body)} bytes exceeds the {max_body}-byte limit")


class _Group:
    """The messages of one group: ready ones in order, leased ones by id."""

    def __init__(self) -> None:
        self.ready: deque[Message] = deque()
        self.leased: dict[str, tuple[Message, float, InMemoryConsumer]] = {}
        self.changed = asyncio.Condition()

    def expire(self, now: float) -> None:
        for message, deadline, _ in [v for v in self.leased.values() if v[1] <= now]:
            self.give_back(message)

    def give_back(self, message: Message) -> None:
        del self.leased[message.id]
        self.ready.appendleft(Message(message.id, message.body, message.deliveries))


class InMemoryBroker:
    """Topics fan out to groups; consumers of one group compete for its messages.

    Args:
        lease: seconds a received message stays with its consumer before it is
            delivered again if not acknowledged (a visibility timeout).
        max_body: largest accepted message, in bytes.
    """

    def __init__(self, *, lease: float = 30.0, max_body: int = MAX_BODY) -> None:
        self.lease, self.max_body = lease, max_body
        self._groups: dict[str, dict[str, _Group]] = {}
        self._ids = itertools.count(1)

    async def subscribe(self, topic: str, group: str) -> None:
        """Create ``group`` on ``topic`` (idempotent): it gets every later message."""
        check(topic)
        check(group)
        self._groups.setdefault(topic, {}).setdefault(group, _Group())

    async def publish(self, topic: str, body: bytes) -> None:
        """Give every group of ``topic`` its own copy of ``body``."""
        check(topic, body, self.max_body)
        message_id = str(next(self._ids))
        for group in self._groups.get(topic, {}).values():
            async with group.changed:
                group.ready.append(Message(message_id, body, 0))
                group.changed.notify_all()

    async def publish_many(self, topic: str, bodies: list[bytes]) -> None:
        """Publish several messages in order; all are checked before any is sent."""
        for body in bodies:
            check(topic, body, self.max_body)
        for body in bodies:
            await self.publish(topic, body)

    async def consumer(self, topic: str, group: str, name: str) -> InMemoryConsumer:
        """A consumer that competes with the others of ``group`` for its messages."""
        await self.subscribe(topic, group)
        return InMemoryConsumer(self, self._groups[topic][group], name)

    async def close(self) -> None:
        """Nothing to release: the broker lives and dies with the process."""


class InMemoryConsumer:
    """Receives leased messages from one group and acknowledges them."""

    def __init__(self, broker: InMemoryBroker, group: _Group, name: str) -> None:
        self.name, self._broker, self._group = name, broker, group

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Lease up to ``max_messages``; wait at most ``timeout`` s for the first."""
        loop, group = asyncio.get_running_loop(), self._group
        deadline = loop.time() + timeout
        async with group.changed:
            while True:
                group.expire(loop.time())
                if group.ready:
                    break
                leases = [d for _, d, _ in group.leased.values()]
                wake = min([deadline, *leases]) - loop.time()
                if loop.time() >= deadline:
                    return []
                try:
                    await asyncio.wait_for(group.changed.wait(), max(wake, 0))
                except TimeoutError:
                    pass
            taken = []
            while group.ready and len(taken) < max_messages:
                waiting = group.ready.popleft()
                message = Message(waiting.id, waiting.body, waiting.deliveries + 1)
                group.leased[message.id] = (message, loop.time() + self._broker.lease, self)
                taken.append(message)
            return taken

    async def ack(self, messages: list[Message]) -> None:
        """Settle messages for good; acking twice, or after the lease ran out, is a no-op."""
        for message in messages:
            leased = self._group.leased.get(message.id)
            if leased and leased[2] is self:
                del self._group.leased[message.id]

    async def close(self) -> None:
        """Leave the group; whatever is still leased here goes back at once."""
        async with self._group.changed:
            for message, _, owner in list(self._group.leased.values()):
                if owner is self:
                    self._group.give_back(message)
            self._group.changed.notify_all()


async def main() -> None:
    """Six journal entries: two coaches share them, the reflection gets all six."""
    broker = InMemoryBroker(lease=1.0)
    topic = "coaching.entries"
    await broker.subscribe(topic, "coaches")
    await broker.subscribe(topic, "reflection")
    for n in range(1, 7):
        await broker.publish(topic, f"entry-{n}".encode())

    reflection = await broker.consumer(topic, "reflection", "evening")
    got = await reflection.receive(max_messages=10)
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
    await broker.publish(topic, b"entry-7")
    await broker.publish(topic, b"entry-8")
    batch = await crashing.receive(max_messages=2)
    await crashing.ack(batch[:1])
    await crashing.close()  # leaves holding entry-8, unacknowledged
    survivor = await broker.consumer(topic, "coaches", "coach-d")
    again = await survivor.receive(max_messages=2, timeout=5.0)
    await survivor.ack(again)
    print(f"crash     : acked {batch[0].body.decode()}, "
          f"redelivered {[(m.body.decode(), m.deliveries) for m in again]}")
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
