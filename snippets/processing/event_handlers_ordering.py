"""Per-key ordering with concurrency across keys: key-sharded workers.

A stable hash of each message's key (the user id) picks one of N shards;
each shard is a queue with a single worker. Messages of one key are handled
one at a time in the order they arrived, while the shards run concurrently.

Retries happen in place: the worker retries a failing message before it
takes the next one, so a later message of the same key can never overtake a
retried one. The price is that the shard waits during the backoff.

A message fails for good when its retries run out, or at once when the
handler raises anything other than :class:`TransientError` (a bug, a payload
it cannot read): retrying those only gives the same error again. It is
dead-lettered with its error, and its key is *parked*: later messages of
that key are set aside in order instead of being applied out of order, and
the other keys of the shard carry on. ``redrive(key)`` replays the dead
letter and then the parked messages once someone has fixed the cause. The
redrive request goes through the shard's queue like a message, so no
message of the key can slip in between.

``retry_in_place=False`` shows the tempting alternative: put the failed
message back at the end of the queue. The queue keeps moving, and order
per key is lost.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Message:
    """A message with the key that must keep its order, and its place in that order."""

    key: str
    seq: int
    data: Any = None
    attempts: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DeadLetter:
    """A message that failed for good (its ``attempts`` included) and the error of its last try."""

    message: Message
    error: str


@dataclass(frozen=True)
class _Redrive:
    """A request, queued on the key's shard like a message, to replay the key's dead letter."""

    key: str


class TransientError(Exception):
    """A failure worth retrying."""


Handler = Callable[[Message], Awaitable[None]]


def _describe(error: BaseException) -> str:
    """An error as a person reads it in a dead letter: ``"KeyError: 'mood'"``."""
    return f"{type(error).__name__}: {error}"


# --8<-- [start:sharded]
class ShardedConsumer:
    """Handles messages in order per key and concurrently across shards.

    Args:
        handler: the business logic; raise :class:`TransientError` to retry,
            anything else dead-letters the message at once.
        shards: how many workers (and queues) to run.
        max_attempts: attempts before a transient failure is dead-lettered.
        sleep: awaited with the backoff delay (inject a fake one in tests).
        retry_in_place: False requeues failures at the back (loses order).
    """

    def __init__(self, handler: Handler, *, shards: int = 4, max_attempts: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 retry_in_place: bool = True) -> None:
        if shards < 1 or max_attempts < 1:
            raise ValueError(f"need shards >= 1 and max_attempts >= 1, "
                             f"not {shards} and {max_attempts}")
        self._handler, self._sleep, self._in_place = handler, sleep, retry_in_place
        self.max_attempts = max_attempts
        self._queues: list[asyncio.Queue[Message | _Redrive]] = [
            asyncio.Queue() for _ in range(shards)]
        self._workers = [asyncio.create_task(self._work(q)) for q in self._queues]
        self.dead_letters: dict[str, DeadLetter] = {}
        self.parked: dict[str, list[Message]] = {}

    def shard_of(self, key: str) -> int:
        """The shard of a key: a stable hash, the same in every process and run."""
        return zlib.crc32(key.encode("utf-8")) % len(self._queues)

    async def submit(self, message: Message) -> None:
        """Queue a message on its key's shard."""
        await self._queues[self.shard_of(message.key)].put(message)

    async def redrive(self, key: str) -> None:
        """Replay a key's dead letter and then its parked messages, in order.

        The request waits in the key's shard queue like a message: messages of
        the key queued before it are parked behind the dead letter, messages
        submitted after it are handled after the replay. ``join()`` waits for it.
        """
        await self._queues[self.shard_of(key)].put(_Redrive(key))

    async def _work(self, queue: asyncio.Queue[Message | _Redrive]) -> None:
        while True:
            item = await queue.get()
            try:
                if isinstance(item, _Redrive):
                    await self._replay(queue, item.key)
                else:
                    await self._handle(queue, item)
            finally:
                queue.task_done()

    async def _replay(self, queue: asyncio.Queue[Message | _Redrive], key: str) -> None:
        dead = self.dead_letters.pop(key, None)
        if dead is None:
            return
        for message in [replace(dead.message, attempts=0), *self.parked.pop(key, [])]:
            await self._handle(queue, message)  # fails again: parks the rest again, in order

    async def _handle(self, queue: asyncio.Queue[Message | _Redrive], message: Message) -> None:
        if message.key in self.dead_letters:  # keep order: wait behind the dead letter
            self.parked.setdefault(message.key, []).append(message)
            return
        while True:
            message = replace(message, attempts=message.attempts + 1)
            try:
                await self._handler(message)
                return
            except Exception as error:  # noqa: BLE001 - this message failed, not the worker
                if not isinstance(error, TransientError) or message.attempts >= self.max_attempts:
                    self.dead_letters[message.key] = DeadLetter(message, _describe(error))
                    return
                if not self._in_place:
                    queue.put_nowait(message)  # later messages of the key overtake it
                    return
            await self._sleep(0.1 * 2 ** (message.attempts - 1))
# --8<-- [end:sharded]

    async def join(self) -> None:
        """Wait until every queued message (and redrive) has been handled.

        Raises:
            RuntimeError: a shard's worker is not running: it was closed, or died of a
                ``BaseException`` that is not an ``Exception``. Its queue would never drain.
        """
        for shard, (queue, worker) in enumerate(zip(self._queues, self._workers)):
            drained = asyncio.ensure_future(queue.join())
            await asyncio.wait({drained, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                drained.cancel()
                why = "cancelled" if worker.cancelled() else _describe(worker.exception())
                raise RuntimeError(f"shard {shard} worker stopped ({why}) with "
                                   f"{queue.qsize()} message(s) still queued")

    async def close(self) -> None:
        """Drain the queues, then stop the workers; closing again does nothing."""
        if all(worker.done() for worker in self._workers):
            return
        try:
            await self.join()
        finally:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)


async def main() -> None:
    """Three users' entries: a flaky call, a poisoned entry, a bug, and the requeue mistake."""
    applied: dict[str, list[int]] = {}
    broken = {("ben", 2)}
    scale = {"calm", "bright"}

    async def goal_tracker(message: Message) -> None:
        if (message.key, message.seq) in broken:
            raise TransientError("goal service rejects this entry for now")
        if (message.key, message.seq) == ("ana", 2) and message.attempts == 1:
            raise TransientError("goal service timed out")
        if message.data not in scale:  # a bug, not a TransientError: the scale is incomplete
            raise ValueError(f"no mood {message.data!r} on the scale")
        await asyncio.sleep(0)  # other shards run meanwhile
        applied.setdefault(message.key, []).append(message.seq)

    async def no_wait(seconds: float) -> None:
        pass

    for in_place in (True, False):
        applied.clear()
        consumer = ShardedConsumer(goal_tracker, shards=3, sleep=no_wait,
                                   retry_in_place=in_place)
        for seq in (1, 2, 3):
            for user in ("ana", "ben", "caro"):
                mood = "meh" if (user, seq) == ("caro", 2) else "calm"
                await consumer.submit(Message(user, seq, mood))
        await consumer.join()
        print(f"retry {'in place' if in_place else 'by requeue'}:")
        for user in sorted(applied):
            mark = "" if applied[user] == sorted(applied[user]) else "  <- 3 overtook 2"
            print(f"  {user:<4} (shard {consumer.shard_of(user)}) applied {applied[user]}{mark}")
        if in_place:
            for user, dead in sorted(consumer.dead_letters.items()):
                print(f"  dead letter: {user:<4} entry {dead.message.seq}, "
                      f"attempts {dead.message.attempts}, {dead.error}")
            print(f"  parked {({k: [m.seq for m in v] for k, v in consumer.parked.items()})}")
            broken.clear()  # someone fixes the goal service; meanwhile ben writes entry 4
            await consumer.submit(Message("ben", 4, "bright"))
            await consumer.redrive("ben")
            await consumer.join()
            print(f"  after redrive: ben applied {applied['ben']}")
            scale.add("meh")  # the bug is fixed before the second run
        await consumer.close()


if __name__ == "__main__":
    asyncio.run(main())
