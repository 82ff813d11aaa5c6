"""A bounded queue and the five things a producer can do when it is full.

* ``block``: the producer waits for room (optionally only up to a timeout,
  then it is told the queue is overloaded). Nothing is lost; the producer
  slows to the consumer's pace. This is backpressure.
* ``drop-newest``: the new item is refused and counted. The queue keeps the
  oldest work.
* ``drop-oldest``: the oldest queued item is evicted to make room. The queue
  keeps the freshest work.
* ``shed``: the producer gets an :class:`Overloaded` error at once, with a
  hint of when to retry, and decides for itself (tell the user, retry later).
* ``spill``: items beyond the capacity go to a SQLite file and come back in
  order. Memory stays bounded; the disk does not, so watch it.

Items are ``bytes`` (messages), which is also what lets ``spill`` store them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections import deque
from enum import StrEnum
from pathlib import Path


class Policy(StrEnum):
    """What ``put`` does when the queue is full."""

    BLOCK = "block"
    DROP_NEWEST = "drop-newest"
    DROP_OLDEST = "drop-oldest"
    SHED = "shed"
    SPILL = "spill"


class Overloaded(Exception):
    """The queue is full and will not wait: slow down and retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpillFile:
    """A FIFO of bytes in a SQLite file: what does not fit in memory waits here."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit: each write lands
        self.db.execute("PRAGMA journal_mode=WAL")  # with NORMAL: survives a process crash,
        self.db.execute("PRAGMA synchronous=NORMAL")  # not a power cut, and no fsync per item
        self.db.execute("CREATE TABLE IF NOT EXISTS spill (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self.size = self.db.execute("SELECT count(*) FROM spill").fetchone()[0]

    def push(self, body: bytes) -> None:
        self.db.execute("INSERT INTO spill (body) VALUES (?)", (body,))
        self.size += 1

    def push_front(self, bodies: list[bytes]) -> None:
        """Put ``bodies`` back before everything stored, in their order."""
        first = self.db.execute("SELECT coalesce(min(seq), 1) FROM spill").fetchone()[0]
        self.db.executemany("INSERT INTO spill (seq, body) VALUES (?, ?)",
                            [(first - len(bodies) + i, b) for i, b in enumerate(bodies)])
        self.size += len(bodies)

    def pop(self) -> bytes:
        seq, body = self.db.execute("SELECT seq, body FROM spill ORDER BY seq LIMIT 1").fetchone()
        self.db.execute("DELETE FROM spill WHERE seq = ?", (seq,))
        self.size -= 1
        return body

    def close(self) -> None:
        self.db.close()


# --8<-- [start:queue]
class BoundedQueue:
    """An asyncio FIFO of at most ``capacity`` items in memory.

    Args:
        capacity: items held in memory.
        policy: what ``put`` does when the queue is full (see :class:`Policy`).
        spill_path: the SQLite file for ``spill`` (required by it, refused by the others).
        retry_after: the hint given with :class:`Overloaded`.
    """

    def __init__(self, capacity: int, policy: Policy | str = Policy.BLOCK, *,
                 spill_path: str | Path | None = None, retry_after: float = 1.0) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        try:
            self.policy = Policy(policy)
        except ValueError:
            raise ValueError(f"unknown policy {policy!r}: use one of {[p.value for p in Policy]}") from None
        if (self.policy is Policy.SPILL) != (spill_path is not None):
            raise ValueError("spill_path is required by the spill policy and only by it")
        self.capacity, self.retry_after = capacity, retry_after
        self._items: deque[bytes] = deque()
        self._spill = SpillFile(spill_path) if spill_path is not None else None
        self._changed = asyncio.Condition()
        self.accepted = self.dropped = self.shed = self.waited = self.spilled = 0

    def __len__(self) -> int:
        """Items waiting, in memory and on disk."""
        return len(self._items) + (self._spill.size if self._spill else 0)

    def full(self) -> bool:
        return len(self._items) >= self.capacity

    async def put(self, item: bytes, *, timeout: float | None = None) -> bool:
        """Offer ``item``; return False if it was dropped.

        Raises:
            Overloaded: the policy is ``shed``, or ``block`` waited ``timeout`` s in vain.
        """
        if not isinstance(item, bytes):
            raise TypeError(f"items must be bytes, not {type(item).__name__}")
        async with self._changed:
            if self.full() or (self._spill and self._spill.size):
                if self.policy is Policy.DROP_NEWEST:
                    self.dropped += 1
                    return False
                if self.policy is Policy.DROP_OLDEST:
                    self._items.popleft()
                    self.dropped += 1
                elif self.policy is Policy.SHED:
                    self.shed += 1
                    raise Overloaded(f"queue full ({self.capacity} items): retry in "
                                     f"{self.retry_after} s", self.retry_after)
                elif self.policy is Policy.SPILL:
                    self._spill.push(item)  # behind everything already spilled: order kept
                    self.accepted += 1
                    self.spilled += 1
                    self._changed.notify_all()
                    return True
                else:  # BLOCK
                    self.waited += 1
                    try:
                        async with asyncio.timeout(timeout):
                            await self._changed.wait_for(lambda: not self.full())
                    except TimeoutError:
                        self.waited -= 1
                        self.shed += 1
                        raise Overloaded(f"queue still full after waiting {timeout} s",
                                         self.retry_after) from None
            self._items.append(item)
            self.accepted += 1
            self._changed.notify_all()
            return True

    async def get(self) -> bytes:
        """Take the oldest item, waiting for one if the queue is empty."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self) > 0)
            item = self._items.popleft() if self._items else self._spill.pop()
            while self._spill and self._spill.size and not self.full():
                self._items.append(self._spill.pop())  # refill memory, oldest first
            self._changed.notify_all()
            return item
    # --8<-- [end:queue]

    def close(self) -> None:
        """Close the spill file, first writing back what is in memory so nothing is lost."""
        if self._spill is not None:
            self._spill.push_front(list(self._items))
            self._items.clear()
            self._spill.close()


async def burst(policy: Policy, spill_path: Path | None = None) -> str:
    """Eight entries offered to a queue of three; then a consumer drains it."""
    queue = BoundedQueue(3, policy, spill_path=spill_path)
    got: list[int] = []

    async def consumer(count: int) -> None:
        for _ in range(count):
            got.append(int(await queue.get()))
            await asyncio.sleep(0)  # a slow consumer: one item per turn of the event loop

    overloaded = 0
    if policy is Policy.BLOCK:  # a consumer runs alongside; the producer waits for it
        draining = asyncio.create_task(consumer(8))
    for n in range(1, 9):
        try:
            await queue.put(str(n).encode())
        except Overloaded:
            overloaded += 1
    if policy is not Policy.BLOCK:
        draining = asyncio.create_task(consumer(len(queue)))
    await draining
    queue.close()
    return (f"{policy.value:<12} got {' '.join(map(str, got)):<16} dropped {queue.dropped}, "
            f"refused {overloaded}, waited {queue.waited}, spilled {queue.spilled}")


async def main() -> None:
    """Each policy meets the same burst; then a spilled queue survives a restart."""
    with tempfile.TemporaryDirectory() as tmp:
        for policy in Policy:
            print(await burst(policy, Path(tmp, "spill.db") if policy is Policy.SPILL else None))
        queue = BoundedQueue(3, Policy.SPILL, spill_path=Path(tmp, "restart.db"))
        for n in range(1, 9):
            await queue.put(f"entry-{n}".encode())
        print(f"before restart: {len(queue._items)} in memory, {queue._spill.size} on disk")
        queue.close()
        reopened = BoundedQueue(3, Policy.SPILL, spill_path=Path(tmp, "restart.db"))
        got = [(await reopened.get()).decode() for _ in range(len(reopened))]
        print(f"after restart: {' '.join(got)}")
        reopened.close()


if __name__ == "__main__":
    asyncio.run(main())
