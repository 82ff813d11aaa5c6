"""Routing in memory: topic patterns, content-based rules, and dead-letter routing.

Three ways to decide who gets a message, and one for what happens to a
message nobody can handle:

* **Topic routing.** Queues bind with patterns over dotted routing keys, as
  in RabbitMQ topic exchanges: ``*`` is exactly one word, ``#`` is zero or
  more. A key that no binding matches is an error, not a silent drop.
* **Content-based routing.** Rules look inside the message (mood, goal) and
  pick a destination; the first rule that matches wins, and a default
  catches the rest.
* **Dead-letter routing.** A consumer rejects a message it cannot process;
  after ``max_deliveries`` attempts the message moves to a dead-letter queue
  with a death record (queue, reason, count), like RabbitMQ's ``x-death``.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WORD = re.compile(r"[a-z0-9_-]+")


class Unroutable(LookupError):
    """No binding matches the routing key: the message would be lost."""


# --8<-- [start:matches]
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""
    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))
# --8<-- [end:matches]


def check_key(key: str, *, pattern: bool = False) -> None:
    """Refuse keys with empty or malformed words, naming the bad word."""
    if not isinstance(key, str):
        raise TypeError(f"routing key must be a str, not {type(key).__name__}")
    for word in key.split("."):
        if not (WORD.fullmatch(word) or (pattern and word in ("*", "#"))):
            raise ValueError(f"invalid routing key {key!r}: bad word {word!r}")


@dataclass
class TopicExchange:
    """Routes each message to every queue with a binding that matches its key."""

    bindings: list[tuple[str, str]] = field(default_factory=list)  # (pattern, queue)
    queues: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def bind(self, queue: str, pattern: str) -> None:
        check_key(pattern, pattern=True)
        self.bindings.append((pattern, queue))

    def publish(self, key: str, body: Any) -> list[str]:
        """Deliver to every matching queue (once each); raise :class:`Unroutable` if none."""
        check_key(key)
        targets = sorted({q for p, q in self.bindings if topic_matches(p, key)})
        if not targets:
            raise Unroutable(f"no queue is bound to a pattern matching {key!r}")
        for queue in targets:
            self.queues[queue].append(body)
        return targets


Rule = tuple[str, Callable[[dict[str, Any]], bool]]


def route_by_content(entry: dict[str, Any], rules: list[Rule], default: str) -> str:
    """The destination of the first rule whose predicate holds, else ``default``."""
    for destination, predicate in rules:
        if predicate(entry):
            return destination
    return default


@dataclass
class DeadLetteringQueue:
    """A work queue that moves a message to ``dead_letters`` after ``max_deliveries``."""

    name: str
    max_deliveries: int = 3
    ready: deque[dict[str, Any]] = field(default_factory=deque)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def put(self, body: Any) -> None:
        self.ready.append({"body": body, "deliveries": 0})

    def process(self, handler: Callable[[Any], None]) -> None:
        """Handle every message; a failure requeues it, or dead-letters it at the limit."""
        while self.ready:
            message = self.ready.popleft()
            message["deliveries"] += 1
            try:
                handler(message["body"])
            except Exception as error:  # noqa: BLE001 - any failure counts as a rejection
                if message["deliveries"] < self.max_deliveries:
                    self.ready.append(message)
                else:
                    death = {"queue": self.name, "reason": "rejected",
                             "count": message["deliveries"], "error": repr(error)}
                    self.dead_letters.append({"body": message["body"], "x-death": [death]})


def main() -> None:
    """Route diary events by key, by content, and to the dead letters."""
    exchange = TopicExchange()
    exchange.bind("goal-coach", "coaching.goals.*")
    exchange.bind("mood-agent", "coaching.entries.*")
    exchange.bind("audit", "coaching.#")
    for key in ("coaching.entries.created", "coaching.goals.set", "coaching.goals.set.v2"):
        print(f"{key:<25} -> {exchange.publish(key, key)}")
    try:
        exchange.publish("billing.invoice.paid", "?")
    except Unroutable as error:
        print(f"{'billing.invoice.paid':<25} -> {error}")

    rules: list[Rule] = [("care-team", lambda e: e["mood"] <= 2),
                         ("goal-coach", lambda e: "goal" in e["text"])]
    for entry in ({"mood": 1, "text": "hard day"}, {"mood": 4, "text": "new goal: 10 km"},
                  {"mood": 3, "text": "rained"}):
        print(f"mood {entry['mood']} {entry['text']!r:<18} -> "
              f"{route_by_content(entry, rules, default='archive')}")

    queue = DeadLetteringQueue("reflection", max_deliveries=3)
    for body in ("entry-1", "entry-\x00corrupt", "entry-3"):
        queue.put(body)
    handled: list[str] = []

    def reflect(body: str) -> None:
        if "\x00" in body:
            raise ValueError("cannot parse entry")
        handled.append(body)

    queue.process(reflect)
    dead = queue.dead_letters[0]
    print(f"reflection handled {handled}; dead letter {dead['body']!r} "
          f"after {dead['x-death'][0]['count']} deliveries ({dead['x-death'][0]['error']})")


if __name__ == "__main__":
    main()
