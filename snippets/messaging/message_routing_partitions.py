"""Partitioning by key: per-key order, and what adding a partition moves.

Messages with the same key (one user's journal) go to the same partition,
and one consumer reads a partition in order, so each user's entries are
handled in the order they were written while different users are handled in
parallel. Two ways to pick the partition:

* ``hash(key) % n``, as Kafka's default partitioner does (with murmur2).
  Cheap and even, but changing ``n`` moves most keys to another partition,
  which breaks per-key order for messages already queued.
* A consistent-hash ring with virtual nodes: adding a partition moves only
  the keys the new partition takes over, about ``1 / (n + 1)`` of them.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (``hash()`` is salted per run)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def modulo_partition(key: str, partitions: int) -> int:
    """Kafka-style: hash the key, take it modulo the partition count."""
    if partitions < 1:
        raise ValueError(f"need at least 1 partition, got {partitions}")
    return stable_hash(key) % partitions


# --8<-- [start:ring]
class HashRing:
    """Consistent hashing: each partition owns many points on a ring of hashes.

    A key belongs to the first point at or after its own hash, wrapping
    around. ``replicas`` virtual points per partition even out the shares.
    """

    def __init__(self, partitions: list[str], replicas: int = 100) -> None:
        if not partitions:
            raise ValueError("a ring needs at least one partition")
        self._points: list[tuple[int, str]] = sorted(
            (stable_hash(f"{p}#{i}"), p) for p in partitions for i in range(replicas))
        self._hashes = [h for h, _ in self._points]

    def owner(self, key: str) -> str:
        index = bisect.bisect(self._hashes, stable_hash(key)) % len(self._points)
        return self._points[index][1]
# --8<-- [end:ring]


def moved(keys: list[str], before: dict[str, str], after: dict[str, str]) -> float:
    """The share of keys whose partition changed."""
    return sum(before[k] != after[k] for k in keys) / len(keys)


def main() -> None:
    """Per-key order across partitions, then 3 -> 4 partitions with both schemes."""
    writes = [("ana", "ran 3 km"), ("dan", "slept badly"), ("ana", "set goal 10 km"),
              ("zoe", "meditated"), ("dan", "walked"), ("ana", "ran 5 km")]
    partitions: dict[int, list[str]] = defaultdict(list)
    for user, text in writes:
        partitions[modulo_partition(user, 3)].append(f"{user}: {text}")
    for number in sorted(partitions):
        print(f"partition {number}: {partitions[number]}")

    keys = [f"user-{n}" for n in range(10_000)]
    mod3 = {k: str(modulo_partition(k, 3)) for k in keys}
    mod4 = {k: str(modulo_partition(k, 4)) for k in keys}
    ring3, ring4 = HashRing(["p0", "p1", "p2"]), HashRing(["p0", "p1", "p2", "p3"])
    before = {k: ring3.owner(k) for k in keys}
    after = {k: ring4.owner(k) for k in keys}
    print(f"3 -> 4 partitions, keys that move: modulo {moved(keys, mod3, mod4):.0%}, "
          f"ring {moved(keys, before, after):.0%}")


if __name__ == "__main__":
    main()
