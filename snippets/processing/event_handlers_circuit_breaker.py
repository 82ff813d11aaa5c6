"""A circuit breaker around a flaky downstream: closed, open, half-open.

While the coaching model answers, the breaker is **closed** and counts
consecutive failures. At ``fail_max`` it **opens**: calls fail at once with
:class:`CircuitOpenError` and the model gets time to recover instead of a
flood of retries. After ``reset_timeout`` seconds the breaker is
**half-open**: exactly one trial call goes through; success closes the
breaker, failure opens it for another ``reset_timeout``.

Errors listed in ``exclude`` (the downstream said "no", which proves it is
up) count as successes. The clock is injected so tests never sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpenError(Exception):
    """Raised instead of calling the downstream while the breaker is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


# --8<-- [start:breaker]
class CircuitBreaker:
    """Guards calls to one downstream; see the module docstring for the states.

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
        self.name, self.fail_max, self.reset_timeout = name, fail_max, reset_timeout
        self._exclude, self._clock, self._on_change = exclude, clock, on_change
        self._state, self._failures, self._opened_at = CLOSED, 0, 0.0
        self._trial_running = False

    @property
    def state(self) -> str:
        """The state the next call will find (an expired open state reads as half-open)."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._move(HALF_OPEN)
        return self._state

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` if the breaker allows it, and learn from the outcome."""
        state = self.state
        if state == OPEN or (state == HALF_OPEN and self._trial_running):
            waited = self._clock() - self._opened_at
            raise CircuitOpenError(self.name, max(0.0, self.reset_timeout - waited))
        trial = state == HALF_OPEN
        self._trial_running = trial
        try:
            result = await fn(*args)
        except self._exclude:
            self._succeeded()
            raise
        except Exception:
            self._failed(trial)
            raise
        finally:
            if trial:
                self._trial_running = False
        self._succeeded()
        return result

    def _succeeded(self) -> None:
        self._failures = 0
        if self._state != CLOSED:
            self._move(CLOSED)

    def _failed(self, trial: bool) -> None:
        self._failures += 1
        if trial or self._failures >= self.fail_max:
            self._opened_at = self._clock()
            self._move(OPEN)

    def _move(self, new: str) -> None:
        old, self._state = self._state, new
        if old != new and self._on_change is not None:
            self._on_change(old, new)
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
