"""The same retrying consumer, with tenacity doing the retrying.

tenacity is the retry library most Python services already depend on. It
supplies the loop, the stop rule, the retry predicate and an injectable
async sleep. Its ``wait_random_exponential`` is exactly full jitter, but it
draws from the global ``random`` module; to keep the delays reproducible the
wait below takes tenacity's exponential ceiling (``wait_exponential``) and
draws the jitter from an injected ``random.Random``.

Everything around the retries (decoding, the dead-letter queue, the loop)
is the same as in the hand-written version, and the same tests run on both.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)


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


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base * 2**(n-1)))."""

    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < base <= cap and max_attempts >= 1")


# --8<-- [start:wait]
def full_jitter(backoff: Backoff, rng: random.Random) -> Callable[[RetryCallState], float]:
    """A tenacity wait: uniform(0, tenacity's exponential ceiling), from ``rng``."""
    ceiling = wait_exponential(multiplier=backoff.base, max=backoff.cap)
    return lambda state: rng.uniform(0.0, ceiling(state))
# --8<-- [end:wait]


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


class RetryingConsumer:
    """Runs a handler with tenacity's retries and dead-letters what it cannot handle.

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

    # --8<-- [start:process]
    async def process(self, message: Message) -> bool:
        """Handle one message; True if handled, False if dead-lettered."""
        try:
            data = decode(message.body)
        except ValueError as error:
            return self._dead_letter(message, f"malformed payload: {error}", 1, error)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.backoff.max_attempts),
            wait=full_jitter(self.backoff, self._rng),
            retry=retry_if_exception_type(RETRYABLE),
            sleep=self._sleep,
            reraise=True,  # give us the handler's own exception, not RetryError
        )
        try:
            await retrying(self._handler, data)
        except RETRYABLE as error:
            attempts = retrying.statistics["attempt_number"]
            return self._dead_letter(message, f"gave up after {attempts} attempts: {error}",
                                     attempts, error)
        except Exception as error:  # not retryable: tenacity re-raised it at once
            return self._dead_letter(message, f"rejected: {error}",
                                     retrying.statistics["attempt_number"], error)
        self.handled.append(message.message_id)
        return True
    # --8<-- [end:process]

    def _dead_letter(self, message: Message, reason: str, attempts: int,
                     error: Exception) -> bool:
        self.dead_letters.append(DeadLetter(message, reason, attempts, type(error).__name__))
        return False

    async def run(self, queue: asyncio.Queue[Message | None]) -> None:
        """Consume until a ``None`` arrives; no message can stop the loop."""
        while (message := await queue.get()) is not None:
            await self.process(message)


async def main() -> None:
    """The same four journal events as the hand-written version, the same outcome."""
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
