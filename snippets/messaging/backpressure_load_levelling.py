"""Queue-based load levelling, simulated second by second with a simulated clock.

At 21:00 the evening reminder goes out and 300 people write their entry
within ten seconds. The coaching agent can handle 25 entries a second (its
model quota). Without a queue, whatever arrives above 25 in a second is
refused. With a queue in front, the agent keeps working at 25 a second and
the burst becomes a backlog that drains after the burst; the cost is that
entries wait. A queue that is too small refuses the rest of the burst anyway.

Every number printed comes from this arithmetic, not from a stopwatch; the
benchmark on the same page measures the real thing with asyncio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

ARRIVALS = [5, 40, 60, 60, 50, 40, 20, 10, 10, 5]  # entries per second from 21:00:00
RATE = 25  # entries the agent handles per second


@dataclass
class Run:
    """What one configuration did, second by second."""

    capacity: int | None  # None: no queue at all; callers are refused above RATE
    handled: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)  # seconds each handled entry waited


# --8<-- [start:simulate]
def simulate(capacity: int | None, arrivals: list[int] = ARRIVALS, rate: int = RATE) -> Run:
    """Each second, entries arrive and what fits is queued; then the agent takes up to ``rate``.

    ``capacity=None`` means no queue: the agent takes up to ``rate`` callers a
    second directly and the rest are refused. ``depth`` is the backlog just
    after the arrivals, before the agent takes its share.
    """
    if rate < 1 or any(a < 0 for a in arrivals) or (capacity is not None and capacity < 1):
        raise ValueError(f"need rate >= 1, capacity >= 1 or None, arrivals >= 0; got rate "
                         f"{rate}, capacity {capacity}, arrivals {arrivals}")
    run, queue = Run(capacity), deque()
    second = 0
    while second < len(arrivals) or queue:
        arriving = arrivals[second] if second < len(arrivals) else 0
        room = rate if capacity is None else capacity - len(queue)  # no queue: direct calls
        admitted = min(arriving, room)
        queue.extend([second] * admitted)
        run.refused.append(arriving - admitted)
        run.depth.append(0 if capacity is None else len(queue))
        took = [queue.popleft() for _ in range(min(rate, len(queue)))]
        run.waits += [second - arrived for arrived in took]
        run.handled.append(len(took))
        second += 1
    return run
# --8<-- [end:simulate]


def main() -> None:
    """The same burst with no queue, a queue of 1,000 and a queue of 60."""
    runs = {"no queue": simulate(None), "queue 1000": simulate(1000), "queue 60": simulate(60)}
    print("second   arrived | handled / refused / backlog")
    print(" " * 17 + "|" + "".join(f"{name:>20}" for name in runs))
    for second in range(max(len(r.handled) for r in runs.values())):
        arrived = ARRIVALS[second] if second < len(ARRIVALS) else 0
        cells = []
        for r in runs.values():
            if second < len(r.handled):
                cells.append(f"{r.handled[second]:>6} /{r.refused[second]:>4} /{r.depth[second]:>4}")
            else:
                cells.append("")
        print(f"21:00:{second:02d} {arrived:>7} |" + "".join(f"{c:>20}" for c in cells))
    for name, r in runs.items():
        print(f"{name:<10}: handled {sum(r.handled)}, refused {sum(r.refused):>3}, "
              f"max backlog {max(r.depth):>3}, max wait {max(r.waits)} s, "
              f"took {len(r.handled)} s")


if __name__ == "__main__":
    main()
