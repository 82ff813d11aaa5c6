"""A messaging bridge in memory: move messages from a queue to a stream, losing none
and showing no duplicate, even when the bridge crashes between its steps.

The bridge takes a message from the source queue, publishes it to the
target stream, waits for the target's confirmation, and only then
acknowledges it on the source. A crash before the acknowledgement leaves the
message unacknowledged, so the source delivers it again: nothing is lost,
but the bridge may publish it twice. The target drops the second copy
because each publish carries the message's id and the target remembers the
ids of its duplicate window (JetStream's ``Nats-Msg-Id``). A message without
an id cannot be deduplicated: the bridge rejects it to the source's dead
letters instead of guessing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Crash(Exception):
    """The bridge process dies here: nothing after this line runs."""


@dataclass
class Message:
    """A message on the source queue: its producer-assigned id and its body."""

    id: str | None
    body: bytes
    redelivered: bool = False


@dataclass
class SourceQueue:
    """A queue with manual acks: unacknowledged messages return when their consumer dies."""

    ready: deque[Message] = field(default_factory=deque)
    unacked: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)

    def get(self) -> Message | None:
        if not self.ready:
            return None
        self.unacked.append(self.ready.popleft())
        return self.unacked[-1]

    def ack(self, message: Message) -> None:
        self.unacked.remove(message)

    def reject(self, message: Message) -> None:
        self.unacked.remove(message)
        self.dead_letters.append(message)

    def connection_lost(self) -> None:
        """Requeue, at the front and flagged, everything the dead consumer held."""
        for message in reversed(self.unacked):
            message.redelivered = True
            self.ready.appendleft(message)
        self.unacked.clear()


@dataclass
class TargetStream:
    """A stream that drops a message whose id it stored within ``window`` seconds."""

    window: float = 120.0
    messages: list[tuple[str | None, bytes]] = field(default_factory=list)
    _ids: dict[str, float] = field(default_factory=dict)

    def publish(self, body: bytes, msg_id: str | None, now: float) -> bool:
        """Store ``body``; return True if it was a duplicate and was dropped instead."""
        if msg_id is not None and now - self._ids.get(msg_id, -self.window) < self.window:
            return True
        self.messages.append((msg_id, body))
        if msg_id is not None:
            self._ids[msg_id] = now
        return False


# --8<-- [start:bridge]
@dataclass
class Bridge:
    """Relays source -> target: publish, wait for the confirmation, then ack."""

    source: SourceQueue
    target: TargetStream
    on_step: Callable[[str, str], None] = lambda step, msg_id: None
    relayed: int = 0
    duplicates: int = 0

    def relay_all(self, now: float = 0.0) -> None:
        while (message := self.source.get()) is not None:
            if not message.id:  # no id, no deduplication: do not guess, set it aside
                self.source.reject(message)
                continue
            self.on_step("consumed", message.id)
            if self.target.publish(message.body, message.id, now):  # confirmed
                self.duplicates += 1
            self.on_step("published", message.id)
            self.source.ack(message)
            self.relayed += 1
# --8<-- [end:bridge]


def relay_ack_first(source: SourceQueue, target: TargetStream,
                    on_step: Callable[[str, str], None]) -> None:
    """The wrong order, for contrast: acknowledge, then publish."""
    while (message := source.get()) is not None:
        source.ack(message)
        on_step("acked", message.id)
        target.publish(message.body, message.id, now=0.0)


def crash_at(step: str, msg_id: str) -> Callable[[str, str], None]:
    """A step hook that crashes the bridge once, at ``step`` of message ``msg_id``."""
    armed = [True]

    def hook(current: str, current_id: str) -> None:
        if armed[0] and (current, current_id) == (step, msg_id):
            armed[0] = False
            raise Crash(f"killed after {step} of {msg_id}")
    return hook


def entries(n: int) -> SourceQueue:
    return SourceQueue(deque(Message(f"entry-{i}", f"entry {i}".encode())
                             for i in range(1, n + 1)))


def main() -> None:
    """Crash the bridge at each step, restart it, and count what reached the target."""
    source, target = entries(5), TargetStream()
    try:
        relay_ack_first(source, target, crash_at("acked", "entry-3"))
    except Crash:
        source.connection_lost()
    relay_ack_first(source, target, lambda step, msg_id: None)
    print(f"ack first  : crashed after acking entry-3; target holds {len(target.messages)} "
          f"of 5, entry-3 is lost")
    for step in ("consumed", "published"):
        source, target = entries(5), TargetStream()
        try:
            Bridge(source, target, crash_at(step, "entry-3")).relay_all()
        except Crash as crash:
            source.connection_lost()  # the broker sees the connection drop
            print(f"crash after {step:<9}: {crash}")
        bridge = Bridge(source, target)  # the restarted bridge
        bridge.relay_all()
        ids = [msg_id for msg_id, _ in target.messages]
        print(f"  restarted: relayed {bridge.relayed}, duplicates dropped {bridge.duplicates}"
              f"; target holds {len(ids)} messages, {len(set(ids))} distinct")
    source, target = entries(3), TargetStream()
    source.ready.append(Message(None, b"no id"))
    Bridge(source, target).relay_all()
    print(f"no id      : {[m.body for m in source.dead_letters]} set aside, "
          f"{len(target.messages)} relayed")
    source, target = entries(3), TargetStream(window=120)
    try:
        Bridge(source, target, crash_at("published", "entry-2")).relay_all(now=0)
    except Crash:
        source.connection_lost()
    Bridge(source, target).relay_all(now=600)  # restarted ten minutes later
    ids = [msg_id for msg_id, _ in target.messages]
    print(f"late       : restarted after the 120 s window, the target holds\n{'':13}{ids}")


if __name__ == "__main__":
    main()
