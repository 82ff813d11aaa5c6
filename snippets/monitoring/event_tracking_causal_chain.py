"""Rebuild what caused what for one request from JSON-lines logs.

Give it the log files of every service (``-`` reads standard input) and a
correlation id; it prints the causal tree: each message, the handlers that
took it and how they fared, and under each handler the messages it
published. It also names what a tree cannot show on its own: a message whose
cause is missing from the logs, a message delivered more than once, ids that
were generated because the message arrived without them, and a causation
cycle (which a bug or a hostile producer can write). Lines that are not JSON
are counted and skipped.

Usage::

    python event_tracking_causal_chain.py app.log worker.log            # list requests
    python event_tracking_causal_chain.py app.log -c req-7f3a           # one request
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Node:
    """One message seen in the logs, with what happened to it."""

    message_id: str
    type: str = "?"
    causation_id: str | None = None
    published_by: str | None = None
    publishes: int = 0
    deliveries: int = 0
    generated: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)


def load(lines: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """Parse JSON lines; return the records that carry ids and the count skipped."""
    records, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("message_id"), str):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def build(records: Iterable[dict[str, Any]], correlation_id: str) -> dict[str, Node]:
    """Collect the messages of one correlation id, keyed by message id, in log order."""
    nodes: dict[str, Node] = {}
    for r in records:
        if r.get("correlation_id") != correlation_id:
            continue
        node = nodes.setdefault(r["message_id"], Node(r["message_id"]))
        event = r.get("event")
        if event in ("published", "received"):
            node.type = str(r.get("type", node.type))
            node.causation_id = r.get("causation_id") or node.causation_id
            node.published_by = node.published_by or r.get("handler")
            node.publishes += event == "published"
            node.deliveries += event == "received"
        elif event in ("handled", "failed") and r.get("handler"):
            node.outcomes[str(r["handler"])] = (
                "handled" if event == "handled" else f"FAILED {r.get('error', '')}".strip())
        elif event == "ids_generated":
            node.generated = [str(g) for g in r.get("generated", [])]
    return nodes


# --8<-- [start:render]
def render(nodes: dict[str, Node]) -> list[str]:
    """Draw the tree; every message appears exactly once, even with cycles or gaps."""
    children: dict[str | None, list[Node]] = {}
    for node in nodes.values():
        parent = node.causation_id if node.causation_id in nodes else None
        children.setdefault(parent, []).append(node)
    lines: list[str] = []
    drawn: set[str] = set()

    def draw(node: Node, prefix: str, last: bool, top: bool) -> None:
        drawn.add(node.message_id)
        notes = [f"caused by {node.causation_id} (not in these logs)"
                 if node.causation_id and node.causation_id not in nodes else "",
                 f"published {node.publishes} times" if node.publishes > 1 else "",
                 f"delivered {node.deliveries} times" if node.deliveries > 1 else "",
                 f"generated {'+'.join(node.generated)}" if node.generated else ""]
        note = "; ".join(n for n in notes if n)
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{node.message_id} {node.type}" + (f"  [{note}]" if note else ""))
        inner = prefix + ("" if top else ("   " if last else "│  "))
        kids = [k for k in children.get(node.message_id, []) if k.message_id not in drawn]
        entries: list[tuple[str, list[Node]]] = [
            (f"{handler} {outcome}", [k for k in kids if k.published_by == handler])
            for handler, outcome in node.outcomes.items()]
        claimed = {k.message_id for _, ks in entries for k in ks}
        entries += [("", [k]) for k in kids if k.message_id not in claimed]
        for i, (label, published) in enumerate(entries):
            end = i == len(entries) - 1
            if label:
                lines.append(f"{inner}{'└─ ' if end else '├─ '}{label}")
                for j, kid in enumerate(published):
                    draw(kid, inner + ("   " if end else "│  "), j == len(published) - 1, False)
            else:
                draw(published[0], inner, end, False)

    for root in children.get(None, []):
        draw(root, "", True, True)
    for node in nodes.values():  # only a causation cycle leaves messages undrawn
        if node.message_id not in drawn:
            lines.append(f"cycle: {node.message_id} {node.type} is its own ancestor")
            draw(node, "", True, True)
    return lines
# --8<-- [end:render]


def summary(records: list[dict[str, Any]]) -> list[str]:
    """One line per correlation id: messages, deliveries and failures."""
    ids = list(dict.fromkeys(str(r.get("correlation_id")) for r in records))
    lines = []
    for cid in ids:
        nodes = build(records, cid)
        failed = sum(o.startswith("FAILED") for n in nodes.values() for o in n.outcomes.values())
        lines.append(f"{cid:<12} {len(nodes)} messages, {failed} failed handlers")
    return lines


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    """Command line: list the requests in the logs, or draw one request's tree."""
    parser = argparse.ArgumentParser(prog="causal_chain", description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="*", help="JSON-lines log files, or - for stdin")
    parser.add_argument("-c", "--correlation-id", help="draw the tree of this request")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.logs:  # no files: show what the tool does on a small sample
        print(f"$ causal_chain sample.log -c req-7f3a    (sample of {len(SAMPLE)} lines)")
        return main(["-", "-c", "req-7f3a"], stdin=iter(SAMPLE))  # type: ignore[arg-type]
    lines: list[str] = []
    for name in args.logs:
        if name == "-":
            lines += list(stdin or sys.stdin)
        else:
            with open(name, encoding="utf-8", errors="replace") as f:
                lines += f.readlines()
    records, skipped = load(lines)
    if skipped:
        print(f"skipped {skipped} lines that are not JSON log records", file=sys.stderr)
    if not args.correlation_id:
        print("\n".join(summary(records)))
        return 0
    nodes = build(records, args.correlation_id)
    if not nodes:
        print(f"no message with correlation_id {args.correlation_id!r} in these logs",
              file=sys.stderr)
        return 1
    print("\n".join(render(nodes)))
    return 0


def _line(event: str, type_: str, mid: str, cause: str = "", handler: str = "", **more: Any) -> str:
    record = {"event": event, "type": type_, "message_id": mid, "correlation_id": "req-7f3a"}
    record |= {"causation_id": cause} if cause else {}
    record |= {"handler": handler} if handler else {}
    return json.dumps(record | more)


SAMPLE = [  # what two services logged for one journal entry (shortened records)
    _line("published", "EntryWritten", "m-01"),
    _line("published", "GoalProgressed", "m-02", "m-01", "goal-tracker"),
    _line("handled", "EntryWritten", "m-01", handler="goal-tracker"),
    _line("failed", "EntryWritten", "m-01", handler="mood-agent",
          error="TimeoutError: model endpoint did not answer"),
    _line("received", "GoalProgressed", "m-02", "m-01"),
    "worker restarted (plain text, not a JSON record)",
    _line("received", "GoalProgressed", "m-02", "m-01"),
    _line("published", "NudgeSent", "m-03", "m-02", "coach"),
    _line("handled", "GoalProgressed", "m-02", "m-01", "coach"),
    _line("published", "ReflectionQueued", "m-09", "m-08", "reflection"),
]


if __name__ == "__main__":
    sys.exit(main())
