"""Windowed sums over an out-of-order stream: watermarks, allowed lateness, a side output.

Events arrive in processing order, which is not event-time order. The
aggregator keeps a **watermark**: the highest event time seen so far, minus the
allowed lateness. It is the aggregator's claim that "no event older than this
will come any more". A window ``[start, end)`` is closed, and its final sum
emitted once, when the watermark reaches its end. An event whose every window
is already closed is **too late**: it goes to a side output, never silently away
(with hopping windows, an event can miss only its oldest windows: it is added to
the open ones and the side output names the ones it missed).

With ``watermark_per_key=True`` each key has its own watermark (Quix Streams'
default); otherwise one watermark covers the whole stream (Flink, Kafka Streams).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

MINUTE = 60


class Event(NamedTuple):
    """One input: a key (Ana), an event time in seconds, and a value to sum (words)."""

    key: str
    time: int
    value: int


class WindowResult(NamedTuple):
    """A closed window's final sum and how many events it holds."""

    key: str
    start: int
    end: int
    total: int
    count: int


class LateEvent(NamedTuple):
    """An event on the side output: the watermark that refused it, the windows it missed."""

    event: Event
    watermark: int
    missed: tuple[int, ...]  # starts of the closed windows it belonged to


# --8<-- [start:aggregator]
@dataclass
class WindowedSum:
    """Sum ``value`` per key in tumbling (``step=None``) or hopping windows, by event time.

    Args:
        size: window length in seconds.
        step: hop between window starts; ``None`` means ``size`` (tumbling).
        allowed_lateness: how far behind the newest event time an event may be.
        watermark_per_key: one watermark per key instead of one for the stream.
    """

    size: int
    step: int | None = None
    allowed_lateness: int = 0
    watermark_per_key: bool = False
    late: list[LateEvent] = field(default_factory=list)  # the side output
    _open: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (key, start) -> [total, count]
    _max_time: dict[str | None, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.step = self.step or self.size
        if self.size <= 0 or not 0 < self.step <= self.size or self.allowed_lateness < 0:
            raise ValueError(f"need size > 0, 0 < step <= size, lateness >= 0; got "
                             f"size={self.size} step={self.step} lateness={self.allowed_lateness}")

    def watermark(self, key: str | None = None) -> int | None:
        """Event time up to which every window is closed (``None`` before any event)."""
        newest = self._max_time.get(key if self.watermark_per_key else None)
        return None if newest is None else newest - self.allowed_lateness

    def process(self, event: Event) -> list[WindowResult]:
        """Add one event; return the windows its watermark advance closes, oldest first."""
        if not isinstance(event.time, int) or not isinstance(event.value, int):
            raise TypeError(f"event time and value must be ints, got {event!r}")
        scope = event.key if self.watermark_per_key else None
        self._max_time[scope] = max(self._max_time.get(scope, event.time), event.time)
        watermark = self._max_time[scope] - self.allowed_lateness
        starts = self._starts(event.time)
        missed = tuple(s for s in starts if s + self.size <= watermark)
        if missed:  # all of them (tumbling), or the oldest few of its hopping windows
            self.late.append(LateEvent(event, watermark, missed))
        for start in starts[len(missed):]:
            cell = self._open.setdefault((event.key, start), [0, 0])
            cell[0] += event.value
            cell[1] += 1
        return self._close(watermark, scope)

    def flush(self) -> list[WindowResult]:
        """End of input: close every open window."""
        return self._emit(list(self._open))

    def _starts(self, t: int) -> range:
        last = t - t % self.step
        return range(last - self.size + self.step, last + 1, self.step)

    def _close(self, watermark: int, scope: str | None) -> list[WindowResult]:
        return self._emit([(key, start) for key, start in self._open
                           if start + self.size <= watermark and scope in (None, key)])

    def _emit(self, cells: list[tuple[str, int]]) -> list[WindowResult]:
        closed = sorted(cells, key=lambda cell: (cell[1], cell[0]))
        return [WindowResult(key, start, start + self.size, *self._open.pop((key, start)))
                for key, start in closed]
# --8<-- [end:aggregator]


def run(events: Iterable[Event], aggregator: WindowedSum) -> list[WindowResult]:
    """Feed every event, then flush: all the final results in emission order."""
    results = [r for event in events for r in aggregator.process(event)]
    return results + aggregator.flush()


def hhmm(t: int) -> str:
    return f"{t // 3600:02}:{t % 3600 // 60:02}"


def main() -> None:
    """Ana's and Ben's entries arrive out of order; one of Ana's is too late."""
    at = lambda h, m: h * 3600 + m * MINUTE
    arrivals = [Event("ana", at(20, 5), 120), Event("ben", at(20, 10), 300),
                Event("ana", at(20, 50), 80), Event("ana", at(20, 25), 200),  # 25 min late: ok
                Event("ben", at(21, 20), 40), Event("ana", at(21, 5), 60),
                Event("ana", at(21, 40), 90), Event("ana", at(20, 55), 30),  # 45 min late: too late
                Event("ben", at(22, 30), 10)]
    windows = WindowedSum(size=60 * MINUTE, allowed_lateness=30 * MINUTE)
    for event in arrivals:
        closed = windows.process(event)
        line = f"{event.key} {hhmm(event.time)} {event.value:>3} words -> watermark " \
               f"{hhmm(windows.watermark())}"
        if windows.late and windows.late[-1].event == event:
            line += "  TOO LATE: side output"
        print(line + "".join(f"\n    closed {r.key} {hhmm(r.start)}-{hhmm(r.end)}: {r.total} words "
                             f"in {r.count}" for r in closed))
    for r in windows.flush():
        print(f"end of input: {r.key} {hhmm(r.start)}-{hhmm(r.end)}: {r.total} words in {r.count}")
    print(f"side output  : {[(e.event.key, hhmm(e.event.time), e.event.value) for e in windows.late]}")


if __name__ == "__main__":
    main()
