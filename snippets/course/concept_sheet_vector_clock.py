"""Vector clocks: detect concurrent updates instead of pretending to order them.

A vector clock holds one counter per node. A node increments its own counter
for each event; a receiver takes the pointwise maximum of its clock and the
message's, then increments its own. Comparing two clocks gives one of four
answers: before, after, equal, or **concurrent** (each has seen something the
other has not). That last answer is what a Lamport clock cannot give.

``Replica`` uses it the way Dynamo-style stores do: a write whose clock is
newer replaces what it has seen; a write concurrent with the current value
is kept beside it as a *sibling*, so two offline edits of the same goal are
both kept and shown, instead of one silently overwriting the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class Order(Enum):
    """How two clocks relate."""

    BEFORE = "before"
    AFTER = "after"
    EQUAL = "equal"
    CONCURRENT = "concurrent"


class VectorClock:
    """An immutable map from node id to counter; missing nodes count as 0."""

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        clean: dict[str, int] = {}
        for node, count in (counts or {}).items():
            if not isinstance(node, str) or not node:
                raise ValueError(f"node id must be a non-empty str, not {node!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"counter of {node!r} must be an int >= 0, not {count!r}")
            if count:
                clean[node] = count
        self._counts = dict(sorted(clean.items()))

    def get(self, node: str) -> int:
        """The counter of ``node`` (0 if it never had an event)."""
        return self._counts.get(node, 0)

    def increment(self, node: str) -> VectorClock:
        """The clock after one more event on ``node``."""
        return VectorClock({**self._counts, node: self.get(node) + 1})

    def merge(self, other: VectorClock) -> VectorClock:
        """The pointwise maximum: everything either clock has seen."""
        nodes = self._counts.keys() | other._counts.keys()
        return VectorClock({n: max(self.get(n), other.get(n)) for n in nodes})

    # --8<-- [start:compare]
    def compare(self, other: VectorClock) -> Order:
        """Before, after, equal or concurrent."""
        nodes = self._counts.keys() | other._counts.keys()
        less = any(self.get(n) < other.get(n) for n in nodes)
        more = any(self.get(n) > other.get(n) for n in nodes)
        if less and more:
            return Order.CONCURRENT
        return Order.BEFORE if less else Order.AFTER if more else Order.EQUAL
    # --8<-- [end:compare]

    def __lt__(self, other: VectorClock) -> bool:
        """Happened before: ``self`` has seen nothing ``other`` has not, and less."""
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.compare(other) is Order.BEFORE

    def __le__(self, other: VectorClock) -> bool:
        """Before or equal: ``other`` has seen everything ``self`` has."""
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.compare(other) in (Order.BEFORE, Order.EQUAL)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorClock) and self._counts == other._counts

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def __repr__(self) -> str:
        return "[" + " ".join(f"{n}:{c}" for n, c in self._counts.items()) + "]"


# --8<-- [start:replica]
class Replica:
    """Stores one value per key, or several concurrent ones (siblings)."""

    def __init__(self) -> None:
        self.versions: list[tuple[VectorClock, Any]] = []

    def apply(self, clock: VectorClock, value: Any) -> bool:
        """Apply a write; return False if it was already seen or superseded."""
        if any(clock <= seen for seen, _ in self.versions):
            return False  # a duplicate, or older than what we hold
        self.versions = [(c, v) for c, v in self.versions if not c < clock]
        self.versions.append((clock, value))
        return True

    def context(self) -> VectorClock:
        """What a writer has seen after reading every sibling."""
        merged = VectorClock()
        for clock, _ in self.versions:
            merged = merged.merge(clock)
        return merged

    def values(self) -> list[Any]:
        """The current value, or every sibling when writes were concurrent."""
        return [value for _, value in self.versions]
# --8<-- [end:replica]


def main() -> None:
    """Two offline edits of Ana's goal are detected as concurrent and kept."""
    replica = Replica()
    set_ten = VectorClock().increment("phone")
    replica.apply(set_ten, "10 km")
    five = replica.context().increment("laptop")   # the laptop read 10 km, then edited
    twelve = set_ten.increment("phone")            # the phone edited offline
    print(f"set 10 km {set_ten} vs change to 5 km {five}: {set_ten.compare(five).value}")
    print(f"change to 5 km {five} vs offline 12 km {twelve}: {five.compare(twelve).value}")

    replica.apply(five, "5 km")
    print(f"after the laptop's write  : {replica.values()}")
    replica.apply(twelve, "12 km")
    print(f"after the phone syncs     : {replica.values()}  (siblings: ask Ana)")
    print(f"late duplicate of 10 km   : applied={replica.apply(set_ten, '10 km')}")
    chosen = replica.context().increment("phone")  # Ana saw both and picked one
    replica.apply(chosen, "12 km")
    print(f"after Ana resolves {chosen}: {replica.values()}")


if __name__ == "__main__":
    main()
