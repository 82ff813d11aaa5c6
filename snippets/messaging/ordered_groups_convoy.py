"""Ordered groups (sequential convoy): one group's messages in order, groups in parallel.

Every message belongs to a group (a user, an order, a session). Messages of
one group are handled one at a time, in the order they were submitted;
different groups are handled at the same time by a pool of workers. Unlike
sharding by ``hash(key) % workers``, no group is tied to a worker: any idle
worker takes the next group that has a message waiting and none in flight,
so a slow group never holds up a group that happens to share its shard.
Groups take turns (one message per turn), so a busy group cannot starve a
quiet one.

A failure is retried in place (the group waits; nothing of it can overtake).
When the attempts run out, ``on_failure`` decides what happens to the group:

* ``park`` (the default): the failed message and every later message of the
  group are set aside, in order; the group is stopped, the others go on.
  ``redrive(group)`` puts them back, failed message first.
* ``block``: the failed message stays at the head and the group waits there
  (later messages queue behind it) until ``redrive(group)`` retries it.
* ``skip``: the failed message goes to ``dead`` and the group carries on:
  its later messages run *without* it, so order is broken where it mattered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Self


@dataclass(frozen=True)
class Message:
    """A message and the group whose order it belongs to; ``seq`` rises within a group."""

    group: str
    seq: int
    body: str = ""


class OnFailure(StrEnum):
    """What happens to a group when one of its messages exhausts its attempts."""

    PARK = "park"
    BLOCK = "block"
    SKIP = "skip"


Handler = Callable[[Message], Awaitable[None]]


# --8<-- [start:groups]
class OrderedGroups:
    """Runs ``handler`` on each message, in order per group, groups in parallel.

    Args:
        handler: the work; raising means failure (retried up to ``max_attempts``).
        workers: how many messages (of different groups) run at once.
        on_failure: ``park``, ``block`` or ``skip`` (see the module docstring).
        backoff: seconds before the first retry, doubling after each; ``sleep`` waits it.
    """

    def __init__(self, handler: Handler, *, workers: int = 4, max_attempts: int = 3,
                 on_failure: OnFailure | str = OnFailure.PARK, backoff: float = 0.1,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if workers < 1 or max_attempts < 1:
            raise ValueError(f"workers and max_attempts must be at least 1, got {workers} "
                             f"and {max_attempts}")
        self.handler, self.workers, self.max_attempts = handler, workers, max_attempts
        self.on_failure, self.backoff, self.sleep = OnFailure(on_failure), backoff, sleep
        self._pending: dict[str, deque[Message]] = {}
        self._ready: deque[str] = deque()  # groups with a message waiting and none in flight
        self._busy: set[str] = set()
        self._held: set[str] = set()  # parked or blocked
        self._last_seq: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self.parked: dict[str, list[Message]] = {}
        self.blocked: dict[str, Message] = {}
        self.dead: list[tuple[Message, str]] = []
        self.errors: dict[str, str] = {}

    def _schedule(self, group: str) -> None:
        if (self._pending.get(group) and group not in self._busy and group not in self._held
                and group not in self._ready):
            self._ready.append(group)
            self._changed.notify_all()

    async def submit(self, message: Message) -> None:
        """Queue ``message`` behind the earlier messages of its group."""
        if not isinstance(message, Message) or not message.group:
            raise ValueError(f"expected a Message with a group, got {message!r}")
        async with self._changed:  # check and record under one lock: publishers may race
            last = self._last_seq.get(message.group)
            if last is not None and message.seq <= last:
                raise ValueError(f"group {message.group!r}: seq {message.seq} after {last} "
                                 "would break its order")
            self._last_seq[message.group] = message.seq
            if message.group in self.parked:  # behind the parked ones, not around them
                self.parked[message.group].append(message)
                return
            self._pending.setdefault(message.group, deque()).append(message)
            self._schedule(message.group)

    async def _attempt(self, message: Message) -> Exception | None:
        """Try ``message`` up to ``max_attempts`` times; return the last error, if any."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handler(message)
                return None
            except Exception as error:  # noqa: BLE001 - a failure of this message, not the worker's
                if attempt == self.max_attempts:
                    return error
                await self.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _work(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._ready)
                group = self._ready.popleft()
                self._busy.add(group)
                message = self._pending[group][0]
            error = await self._attempt(message)
            async with self._changed:
                self._busy.discard(group)
                pending = self._pending[group]
                if error is None:
                    pending.popleft()
                else:
                    self.errors[group] = f"{type(error).__name__}: {error}"
                    if self.on_failure is OnFailure.SKIP:
                        self.dead.append((pending.popleft(), self.errors[group]))
                    elif self.on_failure is OnFailure.PARK:
                        self.parked[group] = list(pending)
                        pending.clear()
                        self._held.add(group)
                    else:
                        self.blocked[group] = message
                        self._held.add(group)
                self._schedule(group)  # back of the line: groups take turns
                self._changed.notify_all()
    # --8<-- [end:groups]

    async def redrive(self, group: str) -> int:
        """Resume a parked or blocked group, failed message first; return how many wait."""
        async with self._changed:
            if group not in self._held:
                raise KeyError(f"group {group!r} is neither parked nor blocked")
            self._held.discard(group)
            self.blocked.pop(group, None)
            pending = self._pending.setdefault(group, deque())
            pending.extendleft(reversed(self.parked.pop(group, [])))
            self._schedule(group)
            return len(pending)

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        return self

    async def drained(self) -> None:
        """Wait until every group is idle: done, or parked, or blocked."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._ready and not self._busy)

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


ENTRIES = [("ana", 1), ("ben", 1), ("ana", 2), ("caro", 1), ("ben", 2), ("ana", 3),
           ("ben", 3), ("caro", 2)]


async def run_policy(policy: OnFailure) -> tuple[str, int]:
    """Ben's second entry fails until the bug is fixed; then his group is redriven."""
    done: dict[str, list[int]] = {}
    bug_fixed = False
    in_flight: set[str] = set()
    most = 0

    async def coach(message: Message) -> None:
        nonlocal most
        assert message.group not in in_flight, "two messages of one group at once"
        in_flight.add(message.group)
        most = max(most, len(in_flight))
        try:
            await asyncio.sleep(0)  # the model call
            if message == Message("ben", 2) and not bug_fixed:
                raise ValueError("entry text is not valid UTF-8")
            done.setdefault(message.group, []).append(message.seq)
        finally:
            in_flight.discard(message.group)

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    async with OrderedGroups(coach, workers=2, on_failure=policy, sleep=no_wait) as groups:
        for group, seq in ENTRIES:
            await groups.submit(Message(group, seq))
        await groups.drained()
        await groups.submit(Message("ben", 4))  # arrives while ben is stuck
        await groups.drained()
        held = {"park": {g: [m.seq for m in ms] for g, ms in groups.parked.items()},
                "block": {g: m.seq for g, m in groups.blocked.items()},
                "skip": {m.group: m.seq for m, _ in groups.dead}}[policy.value]
        word = {"park": "parked", "block": "blocked at", "skip": "dead letter"}[policy.value]
        line = f"{policy.value:<5} handled {dict(sorted(done.items()))}\n      {word} {held}"
        bug_fixed = True
        if policy is not OnFailure.SKIP:
            await groups.redrive("ben")
            await groups.drained()
            line += f"\n      after the fix, redrive('ben'): ben {done['ben']}"
    return line, most


async def main() -> None:
    """The same entries, with one poison entry of Ben's, under each policy."""
    most = 0
    for policy in OnFailure:
        line, busiest = await run_policy(policy)
        print(line)
        most = max(most, busiest)
    print(f"never two entries of one person at once; up to {most} people at once (2 workers)")


if __name__ == "__main__":
    asyncio.run(main())
