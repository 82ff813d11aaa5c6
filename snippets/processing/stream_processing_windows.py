"""Event time, processing time, and the four kinds of window, on one evening of journal entries.

Ana writes on her phone. Some entries are written offline and reach the server
later, so every entry has two times: ``written_at`` (event time, when it
happened) and ``received_at`` (processing time, when the server saw it).
Windows group events by time so that an unbounded stream can be summed:

* tumbling: fixed size, no overlap; every event falls in exactly one window.
* hopping: fixed size, starting every ``step``; an event falls in size/step windows.
* sliding: one window per event, covering the ``size`` before it (a rolling total).
* session: per key, events closer than ``gap`` to each other; sizes vary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

MINUTE, HOUR = 60, 3600


class Window(NamedTuple):
    """A half-open interval of time, ``[start, end)``, in seconds."""

    start: int
    end: int


@dataclass(frozen=True)
class Entry:
    """A journal entry event with its two clocks (seconds since midnight)."""

    user: str
    words: int
    written_at: int  # event time
    received_at: int  # processing time


def _check(size: int, step: int | None = None) -> None:
    if size <= 0 or (step is not None and not 0 < step <= size):
        raise ValueError(f"need 0 < step <= size, got size={size} step={step}")


# --8<-- [start:assigners]
def tumbling(t: int, size: int) -> Window:
    """The one window of ``size`` seconds that contains ``t``."""
    _check(size)
    start = t - t % size
    return Window(start, start + size)


def hopping(t: int, size: int, step: int) -> list[Window]:
    """Every window of ``size`` seconds, starting each ``step``, that contains ``t``."""
    _check(size, step)
    last = t - t % step
    return [Window(s, s + size) for s in range(last - size + step, last + 1, step)
            if s <= t < s + size]


def sliding(times: Iterable[int], size: int) -> list[Window]:
    """One window per event: the ``size`` seconds up to and including it, ``(t-size, t]``."""
    _check(size)
    return [Window(t - size + 1, t + 1) for t in sorted(times)]


def sessions(times: Iterable[int], gap: int) -> list[Window]:
    """Group times closer than ``gap``; each session is ``[first, last + 1)``.

    Order of arrival does not matter: an event that arrives late can join two
    sessions into one, which is why session windows must be merged, not just opened.
    """
    _check(gap)
    merged: list[Window] = []
    for t in sorted(times):
        if merged and t - (merged[-1].end - 1) < gap:
            merged[-1] = Window(merged[-1].start, t + 1)
        else:
            merged.append(Window(t, t + 1))
    return merged
# --8<-- [end:assigners]


# --8<-- [start:aggregate]
def words_per_window(entries: Iterable[Entry], assign: Callable[[int], list[Window]],
                     clock: Callable[[Entry], int]) -> dict[Window, int]:
    """Sum ``words`` per window, with ``clock`` choosing event or processing time."""
    totals: dict[Window, int] = defaultdict(int)
    for entry in entries:
        for window in assign(clock(entry)):
            totals[window] += entry.words
    return dict(sorted(totals.items()))


def event_time(entry: Entry) -> int:
    return entry.written_at


def processing_time(entry: Entry) -> int:
    return entry.received_at
# --8<-- [end:aggregate]


def hhmm(t: int) -> str:
    """Seconds since midnight as ``HH:MM``."""
    return f"{t // HOUR:02}:{t % HOUR // MINUTE:02}"


def span(window: Window) -> str:
    return f"{hhmm(window.start)}-{hhmm(window.end)}"


def evening() -> list[Entry]:
    """Ana's evening: the phone is offline from 20:40 to 21:35 on a walk."""
    at = lambda h, m: h * HOUR + m * MINUTE
    return [Entry("ana", 120, at(20, 5), at(20, 5)), Entry("ana", 80, at(20, 25), at(20, 25)),
            Entry("ana", 200, at(20, 45), at(21, 35)), Entry("ana", 60, at(21, 10), at(21, 35)),
            Entry("ana", 90, at(21, 50), at(21, 50)), Entry("ana", 150, at(22, 40), at(22, 40))]


def main() -> None:
    """Print the same six entries summed by event time and by processing time, per window kind."""
    entries = evening()
    hourly = lambda t: [tumbling(t, HOUR)]
    for name, clock in (("processing time", processing_time), ("event time", event_time)):
        totals = words_per_window(entries, hourly, clock)
        print(f"hourly words by {name:<15}: "
              + ", ".join(f"{span(w)} {n}" for w, n in totals.items()))

    print("hopping, 1 h every 30 min      : " + ", ".join(
        f"{span(w)} {n}" for w, n in words_per_window(
            entries, lambda t: hopping(t, HOUR, 30 * MINUTE), event_time).items()))
    rolling = sliding((e.written_at for e in entries), HOUR)
    by_time = sorted(entries, key=event_time)
    print("sliding, the hour up to each   : " + ", ".join(
        f"{hhmm(w.end - 1)} {sum(e.words for e in by_time if w.start <= e.written_at < w.end)}"
        for w in rolling))
    writing = sessions((e.written_at for e in entries), gap=30 * MINUTE)
    print("sessions, 30 min of silence    : " + ", ".join(
        f"{hhmm(w.start)}-{hhmm(w.end - 1)} {sum(e.words for e in entries if w.start <= e.written_at < w.end)}"
        for w in writing))


if __name__ == "__main__":
    main()
