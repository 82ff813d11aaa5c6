"""A stream-table join: each journal entry enriched with its goal's title *as of the entry*.

The goals are a table fed by a changelog stream (``GoalSet``, ``GoalRenamed``);
the entries are a stream. Joining an entry with the table "as it is now"
(processing time) gives an answer that depends on which stream happened to be
read first, so a replay disagrees with the live run. The temporal join below
keeps every version of each goal, and waits until the table has caught up to
the entry's event time (the table's watermark) before it looks the title up.
"""

from __future__ import annotations

import bisect
import heapq
from typing import NamedTuple


class GoalChange(NamedTuple):
    """A changelog record of the goals table: the title from ``time`` on."""

    goal_id: str
    time: int
    title: str


class Entry(NamedTuple):
    """A journal entry on the stream, referring to a goal."""

    entry_id: str
    goal_id: str
    time: int


class Enriched(NamedTuple):
    """The join's output: the entry and the goal title valid when it was written."""

    entry_id: str
    goal_id: str
    time: int
    title: str | None  # None: no such goal at that time (a left join)


# --8<-- [start:temporal]
class TemporalJoin:
    """Join entries with the goal version valid at their event time.

    The changelog must arrive in time order (it is the table's history);
    ``heartbeat(t)`` says "no change before ``t`` will come", so entries wait
    for a quiet table no longer than its heartbeats are apart.
    """

    def __init__(self) -> None:
        self._versions: dict[str, list[tuple[int, str]]] = {}
        self._watermark: int | None = None
        self._waiting: list[tuple[int, int, Entry]] = []  # (time, arrival, entry)
        self._arrivals = 0

    def on_change(self, change: GoalChange) -> list[Enriched]:
        """Record a new version of a goal; return the entries it lets through."""
        if self._watermark is not None and change.time < self._watermark:
            raise ValueError(f"goal {change.goal_id!r}: change at {change.time} is older than "
                             f"the table's watermark {self._watermark}; the changelog must be "
                             "in time order")
        self._versions.setdefault(change.goal_id, []).append((change.time, change.title))
        return self.heartbeat(change.time)

    def heartbeat(self, time: int) -> list[Enriched]:
        """No change older than ``time`` will come: release the entries written before it."""
        self._watermark = max(time, self._watermark if self._watermark is not None else time)
        released = []
        while self._waiting and self._waiting[0][0] < self._watermark:
            released.append(self._lookup(heapq.heappop(self._waiting)[2]))
        return released

    def on_entry(self, entry: Entry) -> list[Enriched]:
        """Join now if the table is complete past the entry's time, else wait for it."""
        if self._watermark is not None and entry.time < self._watermark:
            return [self._lookup(entry)]
        self._arrivals += 1
        heapq.heappush(self._waiting, (entry.time, self._arrivals, entry))
        return []

    def _lookup(self, entry: Entry) -> Enriched:
        versions = self._versions.get(entry.goal_id, [])
        i = bisect.bisect_right(versions, entry.time, key=lambda version: version[0])
        return Enriched(*entry, versions[i - 1][1] if i else None)
# --8<-- [end:temporal]


class LatestJoin:
    """The naive join: whatever title the table holds when the entry is processed."""

    def __init__(self) -> None:
        self._titles: dict[str, str] = {}

    def on_change(self, change: GoalChange) -> list[Enriched]:
        self._titles[change.goal_id] = change.title
        return []

    def on_entry(self, entry: Entry) -> list[Enriched]:
        return [Enriched(*entry, self._titles.get(entry.goal_id))]


def run(join: TemporalJoin | LatestJoin, inputs: list[GoalChange | Entry]) -> list[Enriched]:
    """Feed an interleaving of changes and entries; return the output in order."""
    out: list[Enriched] = []
    for item in inputs:
        out += join.on_change(item) if isinstance(item, GoalChange) else join.on_entry(item)
    return out


def hhmm(t: int) -> str:
    return f"{t // 3600:02}:{t % 3600 // 60:02}"


def main() -> None:
    """The same inputs read live (interleaved) and replayed (table first), joined both ways."""
    at = lambda h, m: h * 3600 + m * 60
    changes = [GoalChange("g1", at(19, 0), "Write 3 evenings"),
               GoalChange("g1", at(21, 0), "Write 4 evenings")]
    entries = [Entry("e1", "g1", at(20, 30)), Entry("e2", "g1", at(21, 30))]
    live = [changes[0], entries[0], entries[1], changes[1]]  # the rename arrives late
    replay = changes + entries  # a replay reads the compacted table first
    for name, inputs in (("live", live), ("replay", replay)):
        for join in (LatestJoin(), TemporalJoin()):
            out = run(join, inputs)
            if isinstance(join, TemporalJoin):
                out += join.heartbeat(at(23, 59))
            print(f"{name:<6} {type(join).__name__:<12}: " + "; ".join(
                f"{e.entry_id} {hhmm(e.time)} -> {e.title}" for e in out))


if __name__ == "__main__":
    main()
