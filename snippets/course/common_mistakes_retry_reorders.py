"""Mistake: retries that break per-key order. A requeued message is overtaken.

The queue is in order per user: Ana's entry 1, then her entry 2. Entry 1
fails once (the coach's model timed out). Putting it back at the end of the
queue looks harmless and keeps the queue moving, but entry 2 is now handled
before entry 1: her mood timeline is wrong, and a "goal changed" event
could be undone by the older one it replaced.

The fix keeps the order of each key. Retry **in place**: the failed message
is attempted again before anything behind it. When the attempts run out,
the message goes to the dead-letter queue and its key is **parked**: later
messages of that key wait, in order, while other keys carry on. A redrive,
once the cause is fixed, replays the dead letter first, then what was parked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """The ``seq``-th message of ``key`` (a user id)."""

    key: str
    seq: int


Handler = Callable[[Message], None]


# --8<-- [start:broken]
def requeue_at_the_back(messages: list[Message], handler: Handler,
                        max_attempts: int = 3) -> list[Message]:
    """Broken: a failure goes back to the end of the queue. Returns the dead letters."""
    queue, attempts, dead = deque(messages), {}, []
    while queue:
        message = queue.popleft()
        attempts[message] = attempts.get(message, 0) + 1
        try:
            handler(message)
        except Exception:  # noqa: BLE001 - any failure is retried in this demo
            if attempts[message] < max_attempts:
                queue.append(message)  # everything behind it, same key included, overtakes it
            else:
                dead.append(message)
    return dead
# --8<-- [end:broken]


# --8<-- [start:fixed]
class KeyOrderedConsumer:
    """Fixed: retries in place, then dead-letters the message and parks its key."""

    def __init__(self, handler: Handler, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts}")
        self.handler, self.max_attempts = handler, max_attempts
        self.dead: dict[str, Message] = {}
        self.parked: dict[str, list[Message]] = {}

    def run(self, messages: list[Message]) -> None:
        """Handle messages in order; a parked key's messages are set aside in order."""
        for message in messages:
            if message.key in self.dead:
                self.parked[message.key].append(message)  # wait behind the dead letter
            elif not self._attempt(message):
                self.dead[message.key] = message
                self.parked[message.key] = []

    def _attempt(self, message: Message) -> bool:
        for _ in range(self.max_attempts):
            try:
                self.handler(message)
                return True
            except Exception:  # noqa: BLE001, S112 - any failure is retried
                continue  # a real consumer waits here, with backoff
        return False

    def redrive(self, key: str) -> None:
        """Replay the key's dead letter, then its parked messages, in order.

        A message leaves the consumer only after it was handled: if the redrive
        stops half-way, what was not handled is still held, in order (the one
        handled just before the stop may be handled again: at least once).
        """
        if key not in self.dead:
            raise KeyError(f"no dead letter for key {key!r}")
        while self._attempt(self.dead[key]):
            if not self.parked[key]:
                del self.dead[key], self.parked[key]  # the key is free again
                return
            self.dead[key] = self.parked[key][0]  # the next message heads the key,
            del self.parked[key][0]               # and only then leaves the parked list
# --8<-- [end:fixed]


def flaky(failures: dict[Message, int], applied: list[Message]) -> Handler:
    """A handler that fails ``failures[m]`` times on ``m`` before it succeeds."""
    def handle(message: Message) -> None:
        if failures.get(message, 0) > 0:
            failures[message] -= 1
            raise TimeoutError(f"coach timed out on {message.key}#{message.seq}")
        applied.append(message)
    return handle


def main() -> None:
    """Ana's entry 1 fails once; Ben's entry 1 fails until someone fixes the coach."""
    queue = [Message("ana", 1), Message("ana", 2), Message("ben", 1), Message("ben", 2),
             Message("caro", 1)]

    def show(applied: list[Message]) -> list[str]:
        return [f"{m.key}#{m.seq}" for m in applied]

    applied: list[Message] = []
    failures = {Message("ana", 1): 1, Message("ben", 1): 5}
    dead = requeue_at_the_back(queue, flaky(failures, applied))
    print(f"requeue at the back: applied {show(applied)}, dead {show(dead)}")

    applied = []
    failures = {Message("ana", 1): 1, Message("ben", 1): 5}
    consumer = KeyOrderedConsumer(flaky(failures, applied))
    consumer.run(queue)
    print(f"retry in place     : applied {show(applied)}, dead {show(consumer.dead.values())},"
          f" parked {show(consumer.parked['ben'])}")
    failures.clear()  # the coach is fixed
    consumer.redrive("ben")
    print(f"after the redrive  : applied {show(applied)}")


if __name__ == "__main__":
    main()
