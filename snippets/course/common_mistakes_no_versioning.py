"""Mistake: no versioning. A changed payload is silently misread.

Goals were set in kilometres (``distance_km``). The team moves to metres,
renames the field to ``distance_m`` and ships. The progress consumer, which
nobody told, reads ``event.get("distance_km", 0)``: every new goal has a
target of 0 m and is achieved the moment it is set. No error, no alert.

The fix: every event carries a ``version``. A breaking change (a renamed
field, a new unit) gets a new version and an *upcaster* that turns the old
shape into the new one on read, so the consumer handles one shape. Adding an
optional field stays in the same version, and the consumer ignores fields it
does not know (a tolerant reader). A version the consumer has never seen, or
no version at all, is refused by name instead of being guessed at: the
event can wait in a dead-letter queue until the consumer is upgraded.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


# --8<-- [start:broken]
class UnversionedProgress:
    """Broken: reads whatever fields it expects, and defaults what is missing."""

    def __init__(self) -> None:
        self.targets_m: dict[str, int] = {}

    def handle(self, event: Event) -> None:
        self.targets_m[event["goal_id"]] = event.get("distance_km", 0) * 1000
# --8<-- [end:broken]


class VersionError(ValueError):
    """An event whose version this consumer cannot read."""


# --8<-- [start:fixed]
def upcast(event: Event) -> Event:
    """Return a ``goal.set`` event in the current shape (version 2), never mutating it."""
    version = event.get("version")
    if version == 1:
        event = {**event, "version": 2, "distance_m": event["distance_km"] * 1000}
        del event["distance_km"]
        return event
    if version == 2:
        return event
    raise VersionError(f"{event.get('type')} version {version!r} of goal "
                       f"{event.get('goal_id')!r}: this consumer reads versions 1 and 2")


class VersionedProgress:
    """Fixed: one shape after upcasting; unknown fields ignored; unknown versions refused."""

    def __init__(self) -> None:
        self.targets_m: dict[str, int] = {}

    def handle(self, event: Event) -> None:
        current = upcast(event)  # raises before anything is stored
        self.targets_m[current["goal_id"]] = current["distance_m"]
# --8<-- [end:fixed]


def main() -> None:
    """The same two goals, published before and after the switch to metres."""
    broken = UnversionedProgress()
    for event in ({"type": "goal.set", "goal_id": "g-1", "distance_km": 10},
                  {"type": "goal.set", "goal_id": "g-2", "distance_m": 5000}):
        broken.handle(event)
    achieved = [goal for goal, target in broken.targets_m.items() if target <= 0]
    print(f"unversioned: targets {broken.targets_m}, achieved before any run: {achieved}")

    fixed, parked = VersionedProgress(), []
    for event in ({"type": "goal.set", "version": 1, "goal_id": "g-1", "distance_km": 10},
                  {"type": "goal.set", "version": 2, "goal_id": "g-2", "distance_m": 5000,
                   "coach_note": "start slow"},
                  {"type": "goal.set", "version": 3, "goal_id": "g-3", "distance": "5 mi"}):
        try:
            fixed.handle(event)
        except VersionError as error:
            parked.append(str(error))
    print(f"versioned  : targets {fixed.targets_m}")
    print(f"parked     : {parked}")


if __name__ == "__main__":
    main()
