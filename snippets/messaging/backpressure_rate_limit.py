"""Token-bucket rate limiting, with the clock injected so tests never sleep.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens per second.
A call spends one token (or ``n``). ``try_acquire`` answers at once (shed
what is over the limit); ``acquire`` *reserves* its tokens, letting the bucket
go into debt, and then waits exactly as long as it takes to repay it. Because
each caller's wait is fixed when it reserves, concurrent callers are served
in arrival order and none wakes up only to find its tokens taken. A caller
whose wait would exceed ``max_wait`` is refused instead of queued.

Over any interval of ``t`` seconds the bucket grants at most
``burst + rate * t`` tokens: the long-run rate is ``rate``, and ``burst``
calls may go through back to back after a quiet spell.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimited(Exception):
    """The wait for tokens would exceed ``max_wait``; ``retry_after`` says how long it is."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --8<-- [start:bucket]
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    Args:
        rate: tokens added per second (the sustained rate).
        burst: the bucket's size (the most calls allowed back to back).
        clock: seconds as a float; injected in tests (a clock that never goes back).
        max_wait: refuse an ``acquire`` that would wait longer than this.
    """

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 max_wait: float = float("inf")) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate, self.burst, self.clock, self.max_wait = rate, burst, clock, max_wait
        self._tokens, self._last = float(burst), clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self._last)  # a clock that steps back adds nothing
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = max(now, self._last)

    def _check(self, n: float) -> None:
        if not 0 < n <= self.burst:
            raise ValueError(f"cannot take {n!r} tokens from a bucket of {self.burst}: "
                             "it would never be satisfied")

    def try_acquire(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there now; never wait."""
        self._check(n)
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def reserve(self, n: float = 1) -> float:
        """Take ``n`` tokens, in debt if need be; return the seconds to wait before using them.

        Raises:
            RateLimited: the wait would exceed ``max_wait`` (nothing is taken).
        """
        self._check(n)
        self._refill()
        wait = max(0.0, (n - self._tokens) / self.rate)
        if wait > self.max_wait:
            raise RateLimited(f"rate limit: {n} token(s) in {wait:.2f} s, over the "
                              f"{self.max_wait} s allowed", wait)
        self._tokens -= n
        return wait

    async def acquire(self, n: float = 1, *,
                      sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> float:
        """Wait until ``n`` tokens are ours; return how long that took."""
        wait = self.reserve(n)
        if wait:
            await sleep(wait)
        return wait
# --8<-- [end:bucket]


class SimulatedClock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def main() -> None:
    """Nine entries at 21:00:00 meet a model quota of 2 calls/s with a burst of 3."""
    clock = SimulatedClock()
    quota = TokenBucket(rate=2, burst=3, clock=clock)
    waits = [quota.reserve() for _ in range(9)]  # all nine arrive at once
    print("call starts at +s:", [round(w, 2) for w in waits])

    clock.now = 10.0  # a quiet spell refills the bucket
    strict = TokenBucket(rate=2, burst=3, clock=clock, max_wait=1.0)
    waits, refused = [], []
    for _ in range(7):
        try:
            waits.append(f"{strict.reserve():.1f}")
        except RateLimited as error:
            refused.append(error.retry_after)
    print(f"with max_wait 1 s:  waits {' '.join(waits)}, then {len(refused)} refused "
          f"(retry in {refused[0]:.1f} s)")

    clock.now = 20.0
    shed = TokenBucket(rate=2, burst=3, clock=clock)
    admitted = []
    for _ in range(12):  # one request every 0.25 s for 3 s: twice the rate
        admitted.append(shed.try_acquire())
        await clock.sleep(0.25)
    print("try_acquire at 4/s:", "".join("+" if a else "." for a in admitted),
          f"({sum(admitted)} of 12 admitted)")


if __name__ == "__main__":
    asyncio.run(main())
