"""Two versions of one event live side by side while producers migrate.

Half of the journal's instances still write ``coaching.entry.written`` v1
(mood as a word), the other half v2 (mood as a label and a score). The mood
tracker registers one handler per (type, version) and so reads both. An event
that it has no handler for, such as v3 from a producer deployed too early, is
parked with the reason and kept for a retry: never dropped, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any]], None]


@dataclass
class Parked:
    """An event that no handler could take yet, and why."""

    event: dict[str, Any]
    reason: str


# --8<-- [start:consumer]
@dataclass
class MoodTracker:
    """Keeps each author's mood scores, whatever version the entry came in."""

    scores: dict[str, list[int]] = field(default_factory=dict)
    parked: list[Parked] = field(default_factory=list)
    handlers: dict[tuple[str, int], Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.handlers[("coaching.entry.written", 1)] = self._on_entry_v1
        self.handlers[("coaching.entry.written", 2)] = self._on_entry_v2

    def handle(self, event: dict[str, Any]) -> bool:
        """Run the handler for the event's type and version; park it if there is none."""
        kind, version = event.get("type"), event.get("version")
        handler = self.handlers.get((kind, version))  # type: ignore[arg-type]
        if handler is None or not isinstance(event.get("data"), dict):
            known = ", ".join(f"v{v}" for t, v in sorted(self.handlers) if t == kind)
            reason = (f"{kind} v{version} has no data object" if handler else
                      f"{kind} event carries no version" if version is None else
                      f"no handler for {kind} v{version} (handles {known or 'no version of it'})")
            self.parked.append(Parked(event, reason))
            return False
        handler(event["data"])
        return True

    def retry_parked(self) -> int:
        """Hand every parked event to :meth:`handle` again; return how many it took."""
        waiting, self.parked = self.parked, []
        return sum(self.handle(p.event) for p in waiting)

    def _on_entry_v1(self, data: dict[str, Any]) -> None:
        words = {"awful": 1, "low": 2, "ok": 3, "good": 4, "great": 5}
        self.scores.setdefault(data["user_id"], []).append(words[data["mood"]])

    def _on_entry_v2(self, data: dict[str, Any]) -> None:
        self.scores.setdefault(data["user_id"], []).append(data["mood"]["score"])
# --8<-- [end:consumer]


def main() -> None:
    """Interleaved v1 and v2 entries, a v3 that arrives too early, then the upgrade."""
    def entry(version: int, mood: Any, **extra: Any) -> dict[str, Any]:
        return {"type": "coaching.entry.written", "version": version,
                "data": {"user_id": "ana", "mood": mood, **extra}}

    tracker = MoodTracker()
    stream = [entry(1, "good"), entry(2, {"label": "low", "score": 2}), entry(1, "great"),
              entry(3, {"label": "ok", "score": 3}, author_id="ana")]
    for event in stream:
        tracker.handle(event)
    print(f"scores: {tracker.scores}")
    for parked in tracker.parked:
        print(f"parked: {parked.reason}")

    def on_entry_v3(data: dict[str, Any]) -> None:  # the consumer's next release
        tracker.scores.setdefault(data["author_id"], []).append(data["mood"]["score"])

    tracker.handlers[("coaching.entry.written", 3)] = on_entry_v3
    print(f"after the upgrade, retried {tracker.retry_parked()}: scores {tracker.scores}, "
          f"parked {len(tracker.parked)}")


if __name__ == "__main__":
    main()
