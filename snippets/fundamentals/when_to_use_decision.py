"""A decision guide, written as rules you can read, argue with and change.

Each product feature is described by a few facts. Two facts argue for a
direct call whatever else is true: the user is waiting for an answer that
depends on the other side, or an invariant must hold atomically. Five facts
argue for events. The verdict lists every reason, so a team can see why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """What a product feature needs, in the terms that decide its style."""

    name: str
    user_waits_for_downstream: bool = False
    atomic_invariant: bool = False
    reactions: int = 1
    reactions_will_grow: bool = False
    slow_or_flaky_downstream: bool = False
    needs_history: bool = False
    separate_teams: bool = False


@dataclass(frozen=True)
class Verdict:
    """The recommended style and every reason that led to it."""

    style: str
    reasons: tuple[str, ...]


def recommend(feature: Feature) -> Verdict:
    """Apply the rules to one feature."""
    if feature.reactions < 0:
        raise ValueError(f"{feature.name}: reactions cannot be negative ({feature.reactions})")
    blockers = []
    if feature.user_waits_for_downstream:
        blockers.append("the user waits for an answer that needs the other side")
    if feature.atomic_invariant:
        blockers.append("an invariant must hold atomically")
    for_events = []
    if feature.reactions >= 2:
        for_events.append(f"{feature.reactions} independent reactions")
    if feature.reactions_will_grow:
        for_events.append("the roadmap adds reactions")
    if feature.slow_or_flaky_downstream:
        for_events.append("a slow or flaky downstream must not block the user")
    if feature.needs_history:
        for_events.append("the history itself has product value")
    if feature.separate_teams:
        for_events.append("other teams own the reactions")

    if blockers and len(for_events) >= 2:
        return Verdict("direct call + events for side effects", (*blockers, *for_events))
    if blockers:
        return Verdict("direct call", tuple(blockers))
    if len(for_events) >= 2:
        return Verdict("events", tuple(for_events))
    return Verdict("direct call (start simple)", tuple(for_events) or ("nothing argues for events",))


COACHING_FEATURES = (
    Feature("agents react to a new entry", reactions=3, reactions_will_grow=True,
            slow_or_flaky_downstream=True),
    Feature("show goal progress after saving", user_waits_for_downstream=True),
    Feature("evening reflection summary", reactions=1, needs_history=True,
            slow_or_flaky_downstream=True),
    Feature("spend a coaching credit", atomic_invariant=True, reactions=2,
            separate_teams=True),
    Feature("edit the profile name"),
)


def main() -> None:
    """Print a verdict for each feature of the coaching product."""
    for feature in COACHING_FEATURES:
        verdict = recommend(feature)
        print(f"{feature.name}: {verdict.style}")
        for reason in verdict.reasons:
            print(f"  - {reason}")


if __name__ == "__main__":
    main()
