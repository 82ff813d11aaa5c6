"""The same circuit breaker, with pybreaker keeping the state.

pybreaker implements closed, open and half-open as in Nygard's *Release It!*
and can keep its state in Redis so that all consumers share one breaker.
Its ``calling()`` context manager wraps any block, including one that
awaits, which is how an asyncio handler uses it.

Two adaptations keep it testable the same way as the hand-written one.
pybreaker reads the wall clock when it decides whether the open period is
over; :class:`ClockStorage` reports the opening time so that the elapsed
time is measured on an injected clock. And the wrapper turns pybreaker's
``CircuitBreakerError`` into this module's :class:`CircuitOpenError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

T = TypeVar("T")


class CircuitOpenError(Exception):
    """Raised instead of calling the downstream while the breaker is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


# --8<-- [start:storage]
class ClockStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage, with the open period measured on ``clock``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock, self._opened_on_clock = clock, 0.0

    @property
    def opened_at(self) -> datetime | None:
        if self._opened_at is None:
            return None
        elapsed = self._clock() - self._opened_on_clock
        return datetime.now(UTC) - timedelta(seconds=elapsed)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._opened_at, self._opened_on_clock = value, self._clock()

    def elapsed(self) -> float:
        """Seconds on ``clock`` since the breaker last opened."""
        return self._clock() - self._opened_on_clock
# --8<-- [end:storage]


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str, str], None]) -> None:
        self._on_change = on_change

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._on_change(old_state.name, new_state.name)


# --8<-- [start:breaker]
class CircuitBreaker:
    """A pybreaker breaker with the hand-written one's interface.

    Args:
        name: names the downstream in errors and logs.
        fail_max: consecutive failures that open the breaker.
        reset_timeout: seconds the breaker stays open before a trial call.
        exclude: exception types that mean "the downstream answered".
        clock: monotonic seconds; inject a fake one in tests.
        on_change: called with (old state, new state) on every transition.
    """

    def __init__(self, name: str, *, fail_max: int = 5, reset_timeout: float = 60.0,
                 exclude: tuple[type[Exception], ...] = (),
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, str], None] | None = None) -> None:
        if fail_max < 1 or reset_timeout <= 0:
            raise ValueError(f"need fail_max >= 1 and reset_timeout > 0, "
                             f"not {fail_max} and {reset_timeout}")
        self.name, self.reset_timeout = name, reset_timeout
        self._storage = ClockStorage(clock)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_timeout, exclude=list(exclude),
            state_storage=self._storage, name=name, throw_new_error_on_trip=False,
            listeners=[_Listener(on_change)] if on_change else [])

    @property
    def state(self) -> str:
        """pybreaker's current state: "closed", "open" or "half-open"."""
        return self._breaker.current_state

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` if the breaker allows it, and learn from the outcome."""
        try:
            with self._breaker.calling():
                return await fn(*args)
        except pybreaker.CircuitBreakerError:
            retry_after = max(0.0, self.reset_timeout - self._storage.elapsed())
            raise CircuitOpenError(self.name, retry_after) from None
# --8<-- [end:breaker]


async def main() -> None:
    """The coaching model is down for a while; the breaker spares it and recovers."""
    now = [0.0]
    calls = [0]

    async def coaching_model(entry: str) -> str:
        calls[0] += 1
        if calls[0] <= 4:
            raise ConnectionError("connection refused")
        return f"reflection on {entry}"

    def changed(old: str, new: str) -> None:
        print(f"  t={now[0]:>4.0f} s  breaker {old} -> {new}")

    breaker = CircuitBreaker("coaching-model", fail_max=3, reset_timeout=30.0,
                             clock=lambda: now[0], on_change=changed)
    for n, at in enumerate([0, 1, 2, 3, 4, 40, 45, 80, 81], 1):
        now[0] = float(at)
        try:
            answer = await breaker.call(coaching_model, f"e-{n}")
        except CircuitOpenError as error:
            answer = f"not called: {error}"
        except ConnectionError as error:
            answer = f"failed: {error}"
        print(f"t={at:>4} s  e-{n}: {answer}  [model calls so far: {calls[0]}]")


if __name__ == "__main__":
    asyncio.run(main())
