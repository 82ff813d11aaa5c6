"""Retries with exponential backoff and full jitter, then a dead-letter queue.

A transient failure (a timeout, a 503 from the coaching model) is retried up
to ``max_attempts`` times, waiting a random time between zero and an
exponentially growing ceiling ("full jitter"), so that a thousand consumers
that failed together do not retry together. A permanent failure (a payload
that cannot be parsed, a handler that rejects the data) is not retried at
all. Either way the message ends in the dead-letter queue with the reason,
the number of attempts and its original headers, and the consumer moves on:
a poison message delays the messages behind it by at most its backoff.

The sleep function and the random source are injected, so tests can assert
the exact delays without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """A delivery: id, raw body and the headers it came with."""

    message_id: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetter:
    """A message the consumer gave up on, with everything needed to redrive it."""

    message: Message
    reason: str
    attempts: int
    error_type: str


class TransientError(Exception):
    """A failure worth retrying: the downstream may recover."""


RETRYABLE = (TransientError, TimeoutError, ConnectionError)
Handler = Callable[[dict[str, Any]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


# --8<-- [start:backoff]
@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base * 2**(n-1)))."""

    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < base <= cap and max_attempts >= 1")

    def ceiling(self, failures: int) -> float:
        """The longest wait after the ``failures``-th failed attempt."""
        return min(self.cap, self.base * 2 ** (failures - 1))

    def delay(self, failures: int, rng: random.Random) -> float:
        """A random wait in [0, ceiling]: spreads retries of many consumers apart."""
        return rng.uniform(0.0, self.ceiling(failures))
# --8<-- [end:backoff]


def decode(body: bytes, *, limit: int = 64 * 1024) -> dict[str, Any]:
    """Parse a JSON object body, refusing what a hostile producer might send.

    Raises:
        ValueError: too large, not UTF-8, not JSON, NaN or Infinity, nested too
            deeply, or not a JSON object. The message says which.
    """
    if len(body) > limit:
        raise ValueError(f"body of {len(body)} bytes exceeds the {limit}-byte limit")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as error:
        raise ValueError(f"body is not UTF-8: {error.reason} at byte {error.start}") from None
    except RecursionError:
        raise ValueError("body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"body must be a JSON object, not {type(data).__name__}")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"body contains {name}, which is not valid JSON")


# --8<-- [start:consumer]
class RetryingConsumer:
    """Runs a handler with retries and dead-letters what it cannot handle.

    Args:
        handler: the business logic; raise a retryable error to be called again.
        backoff: how often and how long to wait between attempts.
        sleep: awaited with each delay (inject a fake one in tests).
        rng: the random source for the jitter (seed it in tests).
    """

    def __init__(self, handler: Handler, backoff: Backoff = Backoff(), *,
                 sleep: Sleep = asyncio.sleep, rng: random.Random | None = None) -> None:
        self._handler, self.backoff, self._sleep = handler, backoff, sleep
        self._rng = rng or random.Random()
        self.dead_letters: list[DeadLetter] = []
        self.handled: list[str] = []

    async def process(self, message: Message) -> bool:
        """Handle one message; True if handled, False if dead-lettered."""
        try:
            data = decode(message.body)
        except ValueError as error:
            return self._dead_letter(message, f"malformed payload: {error}", 1, error)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(data)
            except RETRYABLE as error:
                if attempt >= self.backoff.max_attempts:
                    return self._dead_letter(message, f"gave up after {attempt} attempts: "
                                             f"{error}", attempt, error)
                await self._sleep(self.backoff.delay(attempt, self._rng))
            except Exception as error:  # permanent: retrying cannot help
                return self._dead_letter(message, f"rejected: {error}", attempt, error)
            else:
                self.handled.append(message.message_id)
                return True

    def _dead_letter(self, message: Message, reason: str, attempts: int,
                     error: Exception) -> bool:
        self.dead_letters.append(DeadLetter(message, reason, attempts, type(error).__name__))
        return False
# --8<-- [end:consumer]

    async def run(self, queue: asyncio.Queue[Message | None]) -> None:
        """Consume until a ``None`` arrives; no message can stop the loop."""
        while (message := await queue.get()) is not None:
            await self.process(message)


async def main() -> None:
    """Four journal events: one fine, one flaky, one malformed, one that never works."""
    calls: dict[str, int] = {}

    async def coach(data: dict[str, Any]) -> None:
        entry = data["entry"]
        calls[entry] = calls.get(entry, 0) + 1
        if entry == "e-2" and calls[entry] <= 2:
            print(f"coach       : {entry} attempt {calls[entry]} failed: 503")
            raise TransientError("coaching model returned 503")
        if entry == "e-4":
            print(f"coach       : {entry} attempt {calls[entry]} failed: timeout")
            raise TimeoutError("coaching model did not answer in 10 s")

    async def pretend_sleep(seconds: float) -> None:  # the demo does not really wait
        print(f"backoff     : waiting {seconds:.2f} s")

    consumer = RetryingConsumer(coach, Backoff(base=0.5, cap=4.0, max_attempts=4),
                                sleep=pretend_sleep, rng=random.Random(7))
    queue: asyncio.Queue[Message | None] = asyncio.Queue()
    bodies = [b'{"entry": "e-1"}', b'{"entry": "e-2"}', b'{"entry": "e-3"',
              b'{"entry": "e-4"}']
    for n, body in enumerate(bodies, 1):
        queue.put_nowait(Message(f"m-{n}", body, {"traceparent": f"00-trace{n}-01"}))
    queue.put_nowait(None)
    await consumer.run(queue)
    print("handled     :", consumer.handled)
    for letter in consumer.dead_letters:
        print(f"dead letter : {letter.message.message_id} after {letter.attempts} attempt(s), "
              f"{letter.error_type}: {letter.reason}")
        print(f"              original headers kept: {letter.message.headers}")


if __name__ == "__main__":
    asyncio.run(main())
