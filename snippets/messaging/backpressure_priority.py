"""A priority queue that cannot starve its low priorities: aging as a deadline.

Strict priority always serves the most urgent item first, so under constant
urgent load a low-priority item waits for ever (starvation). *Aging* raises
an item's priority the longer it waits. Here an item of priority ``p``
(0 is the most urgent) put at time ``t`` is ranked by ``t + p * aging``:
each priority level is worth ``aging`` seconds of waiting. Since every
item ages at the same speed, that rank never has to be recomputed, and a
plain heap keeps the order. It is earliest-deadline-first, with the
priority setting the deadline.

The promise: an item of priority ``p`` put at ``t`` is served before any item
of priority ``q`` put after ``t + (p - q) * aging``. Equal ranks keep their
arrival order. ``aging=None`` gives strict priority, for comparison.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


# --8<-- [start:queue]
class AgingPriorityQueue(Generic[T]):
    """Lowest rank first; rank = put time + priority * ``aging`` seconds.

    Args:
        aging: seconds of waiting worth one priority level; None for strict priority.
        clock: seconds as a float (injected in tests).
    """

    def __init__(self, *, aging: float | None = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if aging is not None and not aging > 0:
            raise ValueError(f"aging must be positive seconds per level, or None; got {aging!r}")
        self.aging, self.clock = aging, clock
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()  # ties keep arrival order
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, item: T, priority: int) -> None:
        """Queue ``item``; ``priority`` 0 is the most urgent."""
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            raise ValueError(f"priority must be an int >= 0 (0 is most urgent), got {priority!r}")
        rank = float(priority) if self.aging is None else self.clock() + priority * self.aging
        heapq.heappush(self._heap, (rank, next(self._seq), item))
        self._ready.set()

    def get_nowait(self) -> T:
        """The item with the lowest rank; ``IndexError`` if there is none."""
        if not self._heap:
            raise IndexError("get from an empty priority queue")
        item = heapq.heappop(self._heap)[2]
        if not self._heap:
            self._ready.clear()
        return item

    async def get(self) -> T:
        """Wait for an item, then take the one with the lowest rank."""
        while not self._heap:
            await self._ready.wait()
        return self.get_nowait()
# --8<-- [end:queue]


class SimulatedClock:
    """A clock the demo moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def serve(queue: AgingPriorityQueue[str], clock: SimulatedClock) -> list[str]:
    """One crisis entry arrives every second; the worker serves one item per second."""
    queue.put("weekly-digest", 2)
    queue.put("coaching-1", 1)
    served = []
    for second in range(8):
        clock.now = float(second)
        queue.put(f"crisis-{second}", 0)
        served.append(queue.get_nowait())
    return served


def main() -> None:
    """The same evening under strict priority and with aging, second by second."""
    runs = []
    for aging in (None, 2.5):
        clock = SimulatedClock()
        queue: AgingPriorityQueue[str] = AgingPriorityQueue(aging=aging, clock=clock)
        served = serve(queue, clock)
        runs.append((served, sorted(queue.get_nowait() for _ in range(len(queue)))))
    print(f"{'second':<8} {'strict':<15} aging 2.5 s")
    for second, (strict, aged) in enumerate(zip(runs[0][0], runs[1][0])):
        print(f"{second:<8} {strict:<15} {aged}")
    for label, strict, aged in zip(["waiting", ""], runs[0][1], runs[1][1]):
        print(f"{label:<8} {strict:<15} {aged}")


if __name__ == "__main__":
    main()
