"""The two kinds of broker, side by side: a queue forgets, a log remembers.

A *queue* (RabbitMQ, SQS, a PostgreSQL jobs table) hands each message to one
consumer and deletes it once acknowledged: the queue holds the work still to
do. A *log* (Kafka, Redis Streams, NATS JetStream) appends every message and
keeps it until a retention limit; each consumer group only remembers its
position. So a group created tomorrow can read last week, and a bug fix can
be replayed over old messages, which a queue cannot do because the messages
are gone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class QueueBroker:
    """Messages wait until one consumer takes and acknowledges them; then they are gone."""

    waiting: deque[str] = field(default_factory=deque)
    in_flight: dict[int, str] = field(default_factory=dict)
    _tags: int = 0

    def publish(self, message: str) -> None:
        self.waiting.append(message)

    def take(self) -> tuple[int, str] | None:
        """The next message and a tag to acknowledge it with, or None."""
        if not self.waiting:
            return None
        self._tags += 1
        self.in_flight[self._tags] = self.waiting.popleft()
        return self._tags, self.in_flight[self._tags]

    def ack(self, tag: int) -> None:
        del self.in_flight[tag]  # deleted for good: nobody can read it again

    def nack(self, tag: int) -> None:
        self.waiting.appendleft(self.in_flight.pop(tag))


@dataclass
class LogBroker:
    """An append-only log with a retention limit; groups keep only their offsets."""

    retention: int = 1000
    records: list[str] = field(default_factory=list)
    first_offset: int = 0  # offset of records[0]; grows as old records expire
    offsets: dict[str, int] = field(default_factory=dict)

    def publish(self, message: str) -> int:
        self.records.append(message)
        if len(self.records) > self.retention:
            self.records.pop(0)
            self.first_offset += 1
        return self.first_offset + len(self.records) - 1

    def read(self, group: str, max_records: int = 100) -> list[tuple[int, str]]:
        """Records after the group's committed offset (from the oldest kept, for a new group)."""
        start = max(self.offsets.get(group, self.first_offset), self.first_offset)
        index = start - self.first_offset
        return [(start + i, r) for i, r in enumerate(self.records[index:index + max_records])]

    def commit(self, group: str, offset: int) -> None:
        """Remember that ``group`` has handled everything before ``offset``."""
        self.offsets[group] = offset

    def seek(self, group: str, offset: int) -> None:
        """Rewind (replay) or skip ahead."""
        self.offsets[group] = offset


def main() -> None:
    """Four journal entries through each kind; then a new reader arrives late."""
    entries = [f"entry-{n}" for n in range(1, 5)]

    queue = QueueBroker()
    for entry in entries:
        queue.publish(entry)
    handled = []
    while (taken := queue.take()) is not None:
        tag, message = taken
        handled.append(message)
        queue.ack(tag)
    print(f"queue: coaches handled {handled}; left for a new reader: {list(queue.waiting)}")

    log = LogBroker(retention=3)
    for entry in entries:
        log.publish(entry)
    batch = log.read("coaches")
    log.commit("coaches", batch[-1][0] + 1)
    print(f"log  : coaches read {[r for _, r in batch]}; "
          f"offsets below {log.first_offset} are past retention")
    print(f"log  : a new group 'insights' reads {[r for _, r in log.read('insights')]}")
    log.seek("coaches", batch[0][0])
    print(f"log  : coaches replay after a fix: {[r for _, r in log.read('coaches')]}")


if __name__ == "__main__":
    main()
