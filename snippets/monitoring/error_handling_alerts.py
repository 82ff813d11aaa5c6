"""Alert rules for dead letters: how fast they arrive, and how long the oldest has waited.

Two signals cover most dead-letter incidents. A *rate* alert catches an
outage as it happens (a model endpoint down turns every entry into a dead
letter). An *age* alert catches the quiet failure nobody redrove: one letter
sitting for a day is a user whose entry was never coached. Each rule fires
only after its condition has held for ``for_seconds``, as Prometheus does, so
a single blip does not page anyone.

The same rules render as a Prometheus rule file over the metrics of the
Performance Metrics page, so what is tested here is what you deploy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the rules look at: when each dead letter arrived, and which still wait."""

    arrived: Sequence[float]
    waiting: Sequence[float]


@dataclass(frozen=True, slots=True)
class Rule:
    """An alert: a measure over a snapshot, a threshold, and how long it must hold."""

    name: str
    measure: str  # "rate" (letters in the last ``window`` seconds) or "oldest_age"
    threshold: float
    for_seconds: float
    severity: str
    summary: str
    window: float = 300.0

    def value(self, snapshot: Snapshot, now: float) -> float:
        """The measured value at ``now``."""
        if self.measure == "rate":
            return float(sum(now - self.window < t <= now for t in snapshot.arrived))
        if self.measure == "oldest_age":
            return now - min(snapshot.waiting) if snapshot.waiting else 0.0
        raise ValueError(f"rule {self.name!r}: unknown measure {self.measure!r}")

    def promql(self, metric: str = "coaching_dead_letters") -> str:
        """The same condition in PromQL, over the Performance Metrics page's metrics.

        The counter has a series per consumer and reason; ``value`` counts every
        letter together, so the rule sums the series before comparing (without
        ``sum``, three letters from each of two consumers would never fire)."""
        if self.measure == "rate":
            return f"sum(increase({metric}_total[{self.window:.0f}s])) > {self.threshold:g}"
        return f"time() - {metric}_oldest_waiting_timestamp_seconds > {self.threshold:g}"


# --8<-- [start:evaluator]
class Evaluator:
    """Evaluates rules over time: inactive, then pending, then firing, then resolved."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        for rule in rules:
            rule.value(Snapshot([], []), 0.0)  # an unknown measure fails now, not at 3 a.m.
        self.rules = list(rules)
        self._pending_since: dict[str, float] = {}

    def evaluate(self, snapshot: Snapshot, now: float) -> dict[str, tuple[str, float]]:
        """Return ``{rule name: (state, value)}``; state is inactive, pending or firing."""
        states = {}
        for rule in self.rules:
            value = rule.value(snapshot, now)
            if value <= rule.threshold:
                self._pending_since.pop(rule.name, None)
                states[rule.name] = ("inactive", value)
                continue
            since = self._pending_since.setdefault(rule.name, now)
            firing = now - since >= rule.for_seconds
            states[rule.name] = ("firing" if firing else "pending", value)
        return states
# --8<-- [end:evaluator]


def prometheus_rules(rules: Sequence[Rule], group: str = "coaching-dead-letters") -> str:
    """Render the rules as a Prometheus rule file (YAML)."""
    lines = ["groups:", f"  - name: {group}", "    rules:"]
    for rule in rules:
        lines += [f"      - alert: {rule.name}", f"        expr: {rule.promql()}",
                  f"        for: {rule.for_seconds:.0f}s",
                  "        labels:", f"          severity: {rule.severity}",
                  "        annotations:", f"          summary: {rule.summary!r}"]
    return "\n".join(lines)


RULES = [
    Rule("DeadLettersArriving", "rate", threshold=5, for_seconds=120, severity="page",
         summary="More than 5 dead letters in 5 minutes: a dependency is probably down"),
    Rule("DeadLetterWaiting", "oldest_age", threshold=3600, for_seconds=0, severity="ticket",
         summary="A dead letter has waited over an hour: inspect it and redrive or discard it"),
]


def main() -> None:
    """A model outage, its alerts, a redrive that leaves one letter behind."""
    evaluator = Evaluator(RULES)
    outage = [float(t) for t in range(60, 240, 15)]  # 12 dead letters in 3 minutes
    for now in (60, 120, 180, 300, 420, 900, 3900):
        waiting = outage if now < 600 else [195.0]  # at 600 s all but one were redriven
        snapshot = Snapshot([t for t in outage if t <= now], [t for t in waiting if t <= now])
        states = evaluator.evaluate(snapshot, now)
        shown = ", ".join(f"{name} {state} ({value:g})" for name, (state, value) in states.items())
        print(f"t={now:>4}s  {shown}")
    print()
    print(prometheus_rules(RULES))


if __name__ == "__main__":
    main()
