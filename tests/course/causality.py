"""Random message-passing executions with their true happened-before relation.

The ground truth is computed from the execution's graph (program order on
each node, plus send -> receive edges), never from a clock, so the clocks can
be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from snippets.course.concept_sheet_lamport_clock import LamportClock
from snippets.course.concept_sheet_vector_clock import VectorClock

NODES = ("phone", "laptop", "server")


@dataclass
class Event:
    node: str
    kind: str
    lamport: int
    vector: VectorClock
    preds: list[int] = field(default_factory=list)


@dataclass
class Execution:
    events: list[Event]
    reach: list[set[int]]  # reach[j]: every i that happened before j

    def happened_before(self, i: int, j: int) -> bool:
        return i in self.reach[j]

    def concurrent(self, i: int, j: int) -> bool:
        return i != j and not self.happened_before(i, j) and not self.happened_before(j, i)


# (kind, node index, destination or pending-message index)
steps = st.lists(st.tuples(st.sampled_from(["local", "send", "receive"]),
                           st.integers(0, len(NODES) - 1), st.integers(0, 50)),
                 min_size=1, max_size=40)


def run(program: list[tuple[str, int, int]]) -> Execution:
    lamport = {n: LamportClock(n) for n in NODES}
    vector = {n: VectorClock() for n in NODES}
    last: dict[str, int | None] = dict.fromkeys(NODES)
    in_flight: list[tuple[str, int, int, VectorClock]] = []  # to, send event, stamp, clock
    events: list[Event] = []
    for kind, who, arg in program:
        node = NODES[who]
        preds = [] if last[node] is None else [last[node]]
        if kind == "receive":
            mine = [m for m in in_flight if m[0] == node]
            if not mine:
                continue
            message = mine[arg % len(mine)]
            in_flight.remove(message)
            _, sent_by, stamp, clock = message
            preds.append(sent_by)
            time = lamport[node].receive(stamp)
            vector[node] = vector[node].merge(clock).increment(node)
        else:
            time = lamport[node].send() if kind == "send" else lamport[node].tick()
            vector[node] = vector[node].increment(node)
        events.append(Event(node, kind, time, vector[node], preds))
        last[node] = len(events) - 1
        if kind == "send":
            to = NODES[(who + 1 + arg % (len(NODES) - 1)) % len(NODES)]
            in_flight.append((to, len(events) - 1, time, vector[node]))
    reach: list[set[int]] = []
    for event in events:  # predecessors always come earlier in the list
        reach.append(set().union(*({p} | reach[p] for p in event.preds)) if event.preds else set())
    return Execution(events, reach)
