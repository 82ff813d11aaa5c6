"""Retention, trimming and log compaction, in memory: what a replaying consumer sees.

A log gives every record an offset and keeps it until a policy removes it.
Trimming keeps the newest records (Redis ``XADD ... MAXLEN``, ``XTRIM MINID``;
Kafka ``retention.ms`` and ``retention.bytes``) and forgets the rest, read or
not. Compaction (Kafka ``cleanup.policy=compact``) keeps the last record of
every key instead: the log becomes a table that can be rebuilt by replay. A
record whose value is ``None`` is a *tombstone*: it deletes its key, and is
itself removed once ``delete_retention`` seconds have passed. Like Kafka,
compaction never touches the active (last, still open) segment, and
offsets never change, so a compacted log has gaps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its offset, key, value (``None`` for a tombstone) and time in seconds."""

    offset: int
    key: str
    value: str | None
    at: int


class Log:
    """An append-only log, split into segments of ``segment_size`` records.

    Args:
        segment_size: records per segment; only closed segments are compacted.
        delete_retention: seconds a tombstone stays after it was written, so that
            a consumer that replays within that time still sees the deletion.
    """

    def __init__(self, segment_size: int = 4, delete_retention: int = 60) -> None:
        if segment_size < 1 or delete_retention < 0:
            raise ValueError("segment_size must be >= 1 and delete_retention >= 0")
        self.segment_size, self.delete_retention = segment_size, delete_retention
        self.records: list[Record] = []
        self.next_offset = 0
        self.log_start = 0  # moved by trimming only: compaction leaves gaps instead

    def append(self, key: str, value: str | None, at: int) -> int:
        """Append a record (``value=None`` deletes ``key``); return its offset."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"a record needs a non-empty string key, not {key!r}")
        self.records.append(Record(self.next_offset, key, value, at))
        self.next_offset += 1
        return self.next_offset - 1

    # --8<-- [start:trim]
    def trim(self, *, maxlen: int | None = None, minid: int | None = None) -> int:
        """Drop the oldest records: beyond the newest ``maxlen``, or before offset ``minid``.

        Like ``XTRIM``: whether anyone has read them does not matter. Returns the count.
        """
        keep = self.records
        if maxlen is not None:
            keep = keep[max(0, len(keep) - maxlen):]
        if minid is not None:
            keep = [r for r in keep if r.offset >= minid]
        dropped = len(self.records) - len(keep)
        if dropped:
            self.log_start = keep[0].offset if keep else self.next_offset
        self.records = keep
        return dropped
    # --8<-- [end:trim]

    # --8<-- [start:compact]
    def compact(self, now: int) -> int:
        """Keep, in the closed segments, only the last record of each key; drop
        tombstones older than ``delete_retention``. Returns how many records went."""
        active_start = self.next_offset - self.next_offset % self.segment_size
        last = {r.key: r.offset for r in self.records}  # later records win
        keep = [r for r in self.records
                if r.offset >= active_start  # the active segment is never compacted
                or (r.offset == last[r.key]
                    and not (r.value is None and now - r.at >= self.delete_retention))]
        dropped = len(self.records) - len(keep)
        self.records = keep
        return dropped
    # --8<-- [end:compact]

    def read(self, position: int) -> tuple[list[Record], int]:
        """Records from ``position`` on, and how many offsets before the log start it skipped.

        A consumer whose position was trimmed away resumes at the log start, as
        Kafka's ``auto.offset.reset=earliest`` does: the gap is lost to it.
        """
        missed = max(0, self.log_start - position)
        return [r for r in self.records if r.offset >= position], missed


def table(records: list[Record], state: dict[str, str] | None = None) -> dict[str, str]:
    """Fold records into the latest value per key; a tombstone removes its key."""
    state = dict(state or {})
    for record in records:
        if record.value is None:
            state.pop(record.key, None)
        else:
            state[record.key] = record.value
    return state


CHANGES = [("ana", "run 5 km"), ("dan", "walk daily"), ("ben", "sleep 8 h"),
           ("ana", "run 10 km"), ("cat", "read daily"), ("ben", None),
           ("ana", "run 21 km"), ("cat", "read weekly")]


def goal_log() -> Log:
    """Each user's goal changes, one a minute; ben deletes his account at minute 5."""
    log = Log(segment_size=3, delete_retention=600)
    for minute, (user, goal) in enumerate(CHANGES):
        log.append(user, goal, at=minute * 60)
    return log


def main() -> None:
    """Trim and compact the same log, replay each from offset 0, and pause a reader."""
    truth = table(goal_log().records)
    print(f"history : {len(CHANGES)} records; current goals of {sorted(truth)}")
    for policy in ("trim", "compact"):
        log = goal_log()
        gone = log.trim(maxlen=4) if policy == "trim" else log.compact(now=480)
        replayed, missed = log.read(0)
        rebuilt = table(replayed)
        print(f"{policy:<8}: dropped {gone}; replay from 0 sees offsets "
              f"{[r.offset for r in replayed]}, missed {missed}")
        print(f"{'':<10}rebuilt goals of {sorted(rebuilt)} "
              f"{'==' if rebuilt == truth else '!='} history")
    log = goal_log()
    seen = table(log.read(0)[0][:5])  # a reader handles offsets 0-4, then pauses
    log.compact(now=1200)  # 15 minutes on: ben's tombstone (minute 5) is past its 10
    rest, _ = log.read(5)
    print(f"late    : the reader resumes at 5, sees {[r.offset for r in rest]}, "
          f"and still has ben: {'ben' in table(rest, seen)}")


if __name__ == "__main__":
    main()
