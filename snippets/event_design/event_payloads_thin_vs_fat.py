"""Thin or fat: event notification, event-carried state transfer and delta, each with its consumer.

The goal service publishes every change to a goal in three styles:

* notification: only the goal's id. The consumer calls the goal service back.
* state transfer: the whole goal as it now is. The consumer keeps its own copy.
* delta: only the fields that changed, with the goal's new version. The
  consumer patches its copy, so it needs every earlier delta, in order.

The demo takes the goal service down halfway and counts what each costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Goal = dict[str, Any]


class SourceDown(ConnectionError):
    """The goal service does not answer."""


@dataclass
class GoalService:
    """The source of truth for goals; ``up`` switches it off to simulate an outage."""

    goals: dict[str, Goal] = field(default_factory=dict)
    up: bool = True
    calls: int = 0

    def get(self, goal_id: str) -> Goal:
        """What a notification consumer calls back: the goal as it is now."""
        self.calls += 1
        if not self.up:
            raise SourceDown(f"goal service unavailable while fetching {goal_id}")
        return dict(self.goals[goal_id])

    # --8<-- [start:publish]
    def change(self, goal_id: str, **changes: Any) -> dict[str, dict[str, Any]]:
        """Apply a change and return the event it yields, in each of the three styles."""
        goal = {**self.goals.get(goal_id, {"goal_id": goal_id, "version": 0}), **changes}
        goal["version"] += 1
        self.goals[goal_id] = goal
        return {
            "notification": {"goal_id": goal_id},
            "state": {"goal": dict(goal)},
            "delta": {"goal_id": goal_id, "version": goal["version"], "changes": changes},
        }
    # --8<-- [end:publish]


# --8<-- [start:consumers]
@dataclass
class NotificationConsumer:
    """Calls the source back for every event; keeps what it could not fetch."""

    source: GoalService
    goals: dict[str, Goal] = field(default_factory=dict)
    waiting: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, event: dict[str, Any]) -> None:
        try:
            self.goals[event["goal_id"]] = self.source.get(event["goal_id"])
        except SourceDown:
            self.waiting.append(event)  # retry later; nothing is lost

    def retry(self) -> None:
        waiting, self.waiting = self.waiting, []
        for event in waiting:
            self.handle(event)


@dataclass
class StateConsumer:
    """Keeps the newest copy it has seen; older or repeated copies change nothing."""

    goals: dict[str, Goal] = field(default_factory=dict)

    def handle(self, event: dict[str, Any]) -> None:
        goal = event["goal"]
        if goal["version"] > self.goals.get(goal["goal_id"], {"version": 0})["version"]:
            self.goals[goal["goal_id"]] = dict(goal)


@dataclass
class DeltaConsumer:
    """Patches its copy with each delta; a gap in versions is an error, not a guess."""

    goals: dict[str, Goal] = field(default_factory=dict)

    def handle(self, event: dict[str, Any]) -> None:
        goal_id, version = event["goal_id"], event["version"]
        have = self.goals.get(goal_id, {"goal_id": goal_id, "version": 0})
        if version <= have["version"]:
            return  # a duplicate: already applied
        if version != have["version"] + 1:
            raise ValueError(f"{goal_id}: have version {have['version']}, got {version}; "
                             f"the deltas in between are missing")
        self.goals[goal_id] = {**have, **event["changes"], "version": version}
# --8<-- [end:consumers]


def main() -> None:
    """Three changes to a goal; the goal service is down for the last two."""
    source = GoalService()
    notified, stated, patched = NotificationConsumer(source), StateConsumer(), DeltaConsumer()
    sizes: dict[str, list[int]] = {"notification": [], "state": [], "delta": []}
    changes = [{"user_id": "ana", "title": "Run 5 km", "sessions_per_week": 3, "status": "active"},
               {"sessions_per_week": 4}, {"status": "achieved"}]
    for number, change in enumerate(changes, start=1):
        source.up = number == 1
        events = source.change("g-1", **change)
        for style, consumer in (("notification", notified), ("state", stated),
                                ("delta", patched)):
            sizes[style].append(len(json.dumps(events[style])))
            consumer.handle(events[style])
    print("goal service down after the first change:")
    for style, consumer in (("notification", notified), ("state", stated), ("delta", patched)):
        goal = consumer.goals["g-1"]
        print(f"  {style:12} bytes per event {sizes[style]}: has version {goal['version']}, "
              f"status {goal['status']}")
    print(f"  notification: {source.calls} calls to the goal service, "
          f"{len(notified.waiting)} events waiting")
    source.up = True
    notified.retry()
    print(f"service back: notification consumer at version {notified.goals['g-1']['version']} "
          f"after {source.calls} calls")
    try:
        DeltaConsumer().handle({"goal_id": "g-2", "version": 2, "changes": {"status": "paused"}})
    except ValueError as gap:
        print(f"delta without its predecessor: {gap}")


if __name__ == "__main__":
    main()
