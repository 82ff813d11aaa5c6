"""Lamport clocks: a logical time that respects causality, and what it cannot tell.

Every node keeps one counter. It ticks the counter for each local event and
for each message it sends, stamping the message with the new value; on
receipt it jumps to ``max(own, stamp) + 1``. So if event *a* happened before
event *b* (same node earlier, or linked by messages), ``L(a) < L(b)``.

The converse is false: ``L(a) < L(b)`` does not mean *a* happened before
*b*. Two edits made on two offline devices get different numbers, and the
numbers order them as if one had seen the other. Ordering by
``(time, node)`` gives a total order that every node agrees on and that
never contradicts causality; it cannot say which events were concurrent.
For that you need a vector clock.
"""

from __future__ import annotations

from dataclasses import dataclass


# --8<-- [start:clock]
@dataclass
class LamportClock:
    """The logical clock of one node (a phone, a server, a consumer)."""

    node: str
    time: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node:
            raise ValueError(f"node must be a non-empty str, not {self.node!r}")
        _check_stamp(self.time, "initial time")

    def tick(self) -> int:
        """A local event: advance the clock and return the event's timestamp."""
        self.time += 1
        return self.time

    def send(self) -> int:
        """Sending is an event too: return the stamp to put on the message."""
        return self.tick()

    def receive(self, stamp: int) -> int:
        """Receiving a message stamped ``stamp``: jump past it, return the new time."""
        _check_stamp(stamp, "message stamp")
        self.time = max(self.time, stamp) + 1
        return self.time

    def key(self) -> tuple[int, str]:
        """A total-order key for the current event: time, then node id to break ties."""
        return (self.time, self.node)
# --8<-- [end:clock]


def _check_stamp(stamp: object, what: str) -> None:
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp < 0:
        raise ValueError(f"{what} must be an int >= 0, not {stamp!r}")


def main() -> None:
    """Ana edits her goal on her phone and her laptop; the server relays."""
    phone, server, laptop = LamportClock("phone"), LamportClock("server"), LamportClock("laptop")
    log: list[tuple[int, str, str]] = []

    def record(clock: LamportClock, time: int, what: str) -> int:
        log.append((time, clock.node, what))
        return time

    set_ten = record(phone, phone.tick(), "set goal 10 km")
    stamp = record(phone, phone.send(), "sync to server")
    record(server, server.receive(stamp), "goal stored")
    stamp = record(server, server.send(), "push to laptop")
    record(laptop, laptop.receive(stamp), "goal received")
    change_five = record(laptop, laptop.tick(), "change goal to 5 km")
    offline_twelve = record(phone, phone.tick(), "(offline) change goal to 12 km")

    for time, node, what in sorted(log):  # total order: time, then node id
        print(f"L={time}  {node:<6}  {what}")
    print(f"causal    : 'set 10 km' L={set_ten} < 'change to 5 km' L={change_five},"
          " as causality requires")
    print(f"concurrent: '12 km' L={offline_twelve} < '5 km' L={change_five},"
          " yet neither device saw the other: Lamport cannot tell")


if __name__ == "__main__":
    main()
