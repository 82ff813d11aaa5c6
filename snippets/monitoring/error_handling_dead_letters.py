"""Dead letters that keep the reason, the attempts and the original headers, and a quarantine.

A consumer wrapper decides where a failed message goes:

* a transient failure (a timeout, a 503) is retried up to ``max_attempts``
  times, then becomes a dead letter with reason ``max_attempts``;
* a permanent failure (:class:`PermanentError`: malformed, invalid) is not
  retried at all: it goes to quarantine with reason ``poison``;
* a message the broker has already delivered more than ``max_deliveries``
  times is quarantined *before* the handler runs, with reason ``crash_loop``:
  it is the one that keeps killing the process, so no exception handler ever
  got to record it.

Each dead letter keeps the original headers and payload untouched, plus the
consumer name and version it failed under, so an operator can tell whether a
fix has been deployed since. Stdlib only; the clock is injectable.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field


class PermanentError(Exception):
    """The message can never succeed as it is: retrying it only wastes time."""


@dataclass(frozen=True, slots=True)
class Message:
    """A delivery from a broker: its headers, its body and how often it was delivered."""

    headers: Mapping[str, str]
    body: bytes
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A failed message with everything needed to understand and redrive it."""

    id: int
    source: str
    consumer: str
    consumer_version: str
    reason: str
    error: str
    attempts: int
    headers: Mapping[str, str]
    body: bytes
    first_failed_at: float
    dead_at: float


@dataclass
class DeadLetterQueue:
    """An in-memory dead-letter (or quarantine) queue: append-only, ordered, searchable."""

    name: str
    letters: list[DeadLetter] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def add(self, **fields: object) -> DeadLetter:
        """Store a dead letter; the queue assigns its id."""
        letter = DeadLetter(id=next(self._ids), **fields)  # type: ignore[arg-type]
        self.letters.append(letter)
        return letter

    def oldest_age(self, now: float) -> float:
        """Seconds since the oldest letter died (0 when empty): what an age alert watches."""
        return now - self.letters[0].dead_at if self.letters else 0.0

    def __len__(self) -> int:
        return len(self.letters)


Handler = Callable[[Message], Awaitable[None]]


# --8<-- [start:consumer]
class GuardedConsumer:
    """Runs a handler; retries, dead-letters or quarantines what fails.

    Args:
        name: which consumer this is (kept on every dead letter).
        version: the consumer's version, so a redrive can tell a fixed consumer.
        handler: the coroutine that processes one message.
        source: the queue or stream the messages come from.
        max_attempts: tries per delivery for transient failures.
        max_deliveries: deliveries after which a message counts as a crash loop.
        dead: where failed messages go, with reason, attempts and headers.
        quarantine: where crash-looping (poison) messages go.
    """

    def __init__(self, name: str, version: str, handler: Handler, *, source: str,
                 dead: DeadLetterQueue, quarantine: DeadLetterQueue, max_attempts: int = 3,
                 max_deliveries: int = 5, clock: Callable[[], float] = time.time) -> None:
        if max_attempts < 1 or max_deliveries < 1:
            raise ValueError("max_attempts and max_deliveries must be at least 1")
        self.name, self.version, self.handler, self.source = name, version, handler, source
        self.dead, self.quarantine, self.clock = dead, quarantine, clock
        self.max_attempts, self.max_deliveries = max_attempts, max_deliveries

    async def receive(self, message: Message) -> str:
        """Handle one delivery; return ``handled``, ``dead_lettered`` or ``quarantined``."""
        first = self.clock()
        if message.deliveries > self.max_deliveries:  # it crashed us before: do not run it
            self._park(self.quarantine, message, "crash_loop",
                       f"delivered {message.deliveries} times without an outcome", 0, first)
            return "quarantined"
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handler(message)
                return "handled"
            except PermanentError as error:
                self._park(self.quarantine, message, "poison", _describe(error), attempt, first)
                return "quarantined"
            except Exception as error:
                if attempt == self.max_attempts:
                    self._park(self.dead, message, "max_attempts", _describe(error), attempt, first)
                    return "dead_lettered"
        raise AssertionError("unreachable")  # pragma: no cover

    def _park(self, queue: DeadLetterQueue, message: Message, reason: str, error: str,
              attempts: int, first: float) -> None:
        queue.add(source=self.source, consumer=self.name, consumer_version=self.version,
                  reason=reason, error=error, attempts=attempts, headers=dict(message.headers),
                  body=message.body, first_failed_at=first, dead_at=self.clock())
# --8<-- [end:consumer]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]  # bounded: errors can embed whole payloads


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # W3C's example


# --8<-- [start:demo]
async def main() -> None:
    """Four journal entries meet a flaky coach model; one is malformed, one kills workers."""
    ticks = itertools.count(1000)
    dead, quarantine = DeadLetterQueue("entries.dlq"), DeadLetterQueue("entries.quarantine")
    calls: dict[bytes, int] = {}

    async def mood_agent(message: Message) -> None:
        calls[message.body] = calls.get(message.body, 0) + 1
        if message.body == b"not json":
            raise PermanentError("body is not JSON")
        if message.body == b'{"entry": 3}':
            raise TimeoutError("model endpoint did not answer")
        if message.body == b'{"entry": 2}' and calls[message.body] == 1:
            raise ConnectionError("503 from model endpoint")  # fine on the second try

    consumer = GuardedConsumer("mood-agent", "1.4.0", mood_agent, source="coaching.entries",
                               dead=dead, quarantine=quarantine, clock=lambda: next(ticks))
    deliveries = [Message({"message_id": "m-1"}, b'{"entry": 1}'),
                  Message({"message_id": "m-2"}, b'{"entry": 2}'),
                  Message({"message_id": "m-3", "traceparent": TRACEPARENT}, b'{"entry": 3}'),
                  Message({"message_id": "m-4"}, b"not json"),
                  Message({"message_id": "m-5"}, b'{"entry": 5}', deliveries=6)]
    for message in deliveries:
        outcome = await consumer.receive(message)
        print(f"{message.headers['message_id']}: {outcome:<13} after {calls.get(message.body, 0)} calls")
    for letter in dead.letters + quarantine.letters:
        print(f"{letter.reason:<12} {letter.headers['message_id']} attempts={letter.attempts} "
              f"v{letter.consumer_version} {letter.error!r} headers={dict(letter.headers)}")
    print(f"dead letters: {len(dead)}, quarantined: {len(quarantine)}, "
          f"oldest dead letter age: {dead.oldest_age(now=1060):.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:demo]
