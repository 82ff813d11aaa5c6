"""Selective consumers: filters by event type, by attributes and by content.

A filter is data, not code: a small dict in the style of AWS EventBridge
patterns, checked when it is compiled, so a typo fails at subscription time
with the path of the mistake instead of silently matching nothing: in a
section or an operator always, in a field name when the compile is given the
fields the events carry. Data can also be stored, reviewed, and pushed down
to a broker; a lambda cannot.

Filters are evaluated from cheap to expensive: the event type, then the
attributes (headers), and only then the content, which needs the body
decoded. The dispatcher counts decodes per subscriber, so the cost of a
content filter is visible. A body that cannot be decoded never matches a
content filter and never stops the dispatcher.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

OPS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


@dataclass(frozen=True)
class Event:
    """An event as a broker carries it: type, attributes (headers) and an encoded body."""

    event_id: str
    type: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"{}"


class FilterError(ValueError):
    """A filter spec that cannot mean anything; the message names where."""


Condition = Callable[[Any], bool]


# --8<-- [start:compile]
def condition(path: str, rule: Any) -> Condition:
    """Compile one rule: a value, a list of values, or a one-key operator dict."""
    if isinstance(rule, list):
        if not rule:
            raise FilterError(f"{path}: an empty list matches nothing")
        alternatives = [condition(path, r) for r in rule]
        return lambda v: any(c(v) for c in alternatives)
    if not isinstance(rule, dict):
        return lambda v: v == rule and type(v) is type(rule)
    if len(rule) != 1:
        raise FilterError(f"{path}: an operator dict has exactly one key, not {sorted(rule)}")
    (op, arg), = rule.items()
    if op == "prefix" and isinstance(arg, str):
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "anything-but" and isinstance(arg, list):
        return lambda v: v is not None and v not in arg
    if op == "exists" and isinstance(arg, bool):
        return lambda v: (v is not None) is arg
    if op == "numeric" and isinstance(arg, list) and len(arg) in (2, 4):
        pairs = list(zip(arg[::2], arg[1::2]))
        if not all(o in OPS and type(n) in (int, float) for o, n in pairs):
            raise FilterError(f"{path}: numeric takes pairs like ['>=', 200], not {arg}")
        return lambda v: type(v) in (int, float) and all(OPS[o](float(v), n) for o, n in pairs)
    raise FilterError(f"{path}: unknown operator or bad argument {op!r}: {arg!r}")


@dataclass(frozen=True)
class Filter:
    """A compiled filter spec: ``{"type": ..., "attributes": {...}, "content": {...}}``."""

    types: Condition
    attributes: dict[str, Condition]
    content: dict[str, Condition]

    @classmethod
    def compile(cls, spec: Mapping[str, Any],
                fields: Mapping[str, Collection[str]] | None = None) -> Filter:
        """Compile ``spec``; with ``fields`` (the attribute and content field names the
        events carry, per section), a field it does not know is refused too."""
        unknown = set(spec) - {"type", "attributes", "content"}
        if unknown:
            raise FilterError(f"filter: unknown section(s) {sorted(unknown)}")
        part = {k: spec.get(k, {}) for k in ("attributes", "content")}
        for name, rules in part.items():
            if not isinstance(rules, Mapping):
                raise FilterError(f"filter.{name}: must be a mapping of field to rule")
            known = None if fields is None else fields.get(name, ())
            for key in rules if known is not None else ():
                if key not in known:
                    close = difflib.get_close_matches(key, list(known), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise FilterError(f"filter.{name}.{key}: no such field{hint}")
        compiled = {name: {k: condition(f"filter.{name}.{k}", r) for k, r in rules.items()}
                    for name, rules in part.items()}
        return cls(condition("filter.type", spec["type"]) if "type" in spec else lambda t: True,
                   compiled["attributes"], compiled["content"])
# --8<-- [end:compile]


# --8<-- [start:dispatch]
@dataclass
class Subscriber:
    """A selective consumer: its filter, what it received, what filtering cost it."""

    name: str
    filter: Filter
    received: list[str] = field(default_factory=list)
    cost: Counter[str] = field(default_factory=Counter)

    def offer(self, event: Event) -> bool:
        """Check the event cheapest test first; keep it if it matches."""
        self.cost["seen"] += 1
        if not self.filter.types(event.type):
            return False
        if not all(c(event.attributes.get(k)) for k, c in self.filter.attributes.items()):
            return False
        if self.filter.content:
            self.cost["decoded"] += 1
            try:
                data = json.loads(event.body)
            except (ValueError, RecursionError):
                self.cost["undecodable"] += 1
                return False
            if not isinstance(data, dict) or not all(
                    c(data.get(k)) for k, c in self.filter.content.items()):
                return False
        self.received.append(event.event_id)
        return True
# --8<-- [end:dispatch]


def entry(n: int, language: str, mood: str, words: int) -> Event:
    body = json.dumps({"mood": mood, "words": words}).encode()
    return Event(f"e-{n}", "coaching.entry.written", {"language": language}, body)


# The fields the coaching events carry, per section: what a filter may name.
FIELDS = {"attributes": {"language"}, "content": {"mood", "words", "goal"}}


def main() -> None:
    """Nine events, four selective consumers, and what each filter cost."""
    events = [entry(1, "en", "low", 320), entry(2, "fr", "good", 80),
              Event("g-1", "coaching.goal.set", {"language": "en"}, b'{"goal": "run 5 km"}'),
              entry(3, "fr", "low", 450), entry(4, "en", "ok", 210),
              Event("x-1", "coaching.entry.written", {"language": "en"}, b'{"mood": "low"'),
              Event("r-1", "coaching.reflection.ready", {"language": "fr"}, b"{}"),
              entry(5, "de", "low", 40), Event("g-2", "coaching.goal.done", {}, b"{}")]
    subscribers = [
        Subscriber("french coach", Filter.compile(
            {"type": ["coaching.entry.written"], "attributes": {"language": "fr"}}, FIELDS)),
        Subscriber("long-entry summary", Filter.compile(
            {"type": "coaching.entry.written", "content": {"words": {"numeric": [">=", 200]}}},
            FIELDS)),
        Subscriber("goal tracker", Filter.compile({"type": {"prefix": "coaching.goal."}}, FIELDS)),
        Subscriber("low-mood check-in", Filter.compile(
            {"type": "coaching.entry.written", "attributes": {"language": {"anything-but": ["de"]}},
             "content": {"mood": "low"}}, FIELDS)),
    ]
    for event in events:
        for subscriber in subscribers:
            subscriber.offer(event)
    for s in subscribers:
        print(f"{s.name:<19} got {s.received}  (saw {s.cost['seen']}, decoded "
              f"{s.cost['decoded']}, undecodable {s.cost['undecodable']})")
    for typo in ({"type": "coaching.entry.written", "content": {"words": {"gte": 200}}},
                 {"type": "coaching.entry.written", "attributes": {"langauge": "fr"}}):
        try:
            Filter.compile(typo, FIELDS)
        except FilterError as error:
            print(f"refused at subscribe time: {error}")


if __name__ == "__main__":
    main()
