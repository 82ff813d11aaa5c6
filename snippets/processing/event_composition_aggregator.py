"""An aggregator: wait for every coaching agent's reply to an entry, or for a deadline.

When an entry is written, the journal asks several coaching agents for a
reaction and tags the request with a correlation id (the entry id). Replies
come back on one channel, in any order, sometimes twice, sometimes never.
The aggregator groups them by correlation id and completes as soon as every
expected agent has answered, or at the deadline with the answers it has and
the names of the agents that stayed silent.

A reply can be a duplicate (first one wins), late (its group already
completed), from an agent nobody asked, or for a correlation id nobody is
waiting for. Each is counted and ignored, never an error that stops the
consumer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One agent's answer to the request with this correlation id."""

    correlation_id: str
    agent: str
    text: str


@dataclass(frozen=True)
class Aggregate:
    """The combined answer: who replied with what, and who did not."""

    correlation_id: str
    replies: dict[str, str]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass
class _Group:
    expected: frozenset[str]
    replies: dict[str, str]
    future: asyncio.Future[Aggregate]
    timer: asyncio.TimerHandle


# --8<-- [start:aggregator]
class Aggregator:
    """Groups replies by correlation id; completes on the last reply or the deadline.

    Args:
        remember: how many finished correlation ids to remember, so that late
            replies are told apart from unknown ones (bounded memory).
    """

    def __init__(self, *, remember: int = 10_000) -> None:
        self._groups: dict[str, _Group] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self.ignored: Counter[str] = Counter()

    def expect(self, correlation_id: str, agents: Iterable[str],
               deadline: float) -> asyncio.Future[Aggregate]:
        """Start waiting for ``agents``; the future resolves within ``deadline`` seconds."""
        expected = frozenset(agents)
        if not expected or deadline <= 0:
            raise ValueError(f"{correlation_id!r}: need at least one agent and a positive "
                             f"deadline, not {sorted(expected)} and {deadline}")
        if correlation_id in self._groups or correlation_id in self._finished:
            raise ValueError(f"{correlation_id!r} is already in use")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Aggregate] = loop.create_future()
        timer = loop.call_later(deadline, self._finish, correlation_id)
        self._groups[correlation_id] = _Group(expected, {}, future, timer)
        future.add_done_callback(lambda f: self._finish(correlation_id))  # caller cancelled
        return future

    def receive(self, reply: Reply) -> str:
        """Take one reply; return what became of it."""
        group = self._groups.get(reply.correlation_id)
        if group is None:
            outcome = "late" if reply.correlation_id in self._finished else "unknown"
        elif reply.agent not in group.expected:
            outcome = "unexpected agent"
        elif reply.agent in group.replies:
            outcome = "duplicate"
        else:
            group.replies[reply.agent] = reply.text
            if group.replies.keys() == group.expected:
                self._finish(reply.correlation_id)
            return "accepted"
        self.ignored[outcome] += 1
        return outcome

    def _finish(self, correlation_id: str) -> None:
        group = self._groups.pop(correlation_id, None)
        if group is None:
            return
        group.timer.cancel()
        self._finished[correlation_id] = None
        while len(self._finished) > self._remember:
            self._finished.popitem(last=False)
        if not group.future.done():
            missing = tuple(sorted(group.expected - group.replies.keys()))
            group.future.set_result(Aggregate(correlation_id, dict(group.replies), missing))
# --8<-- [end:aggregator]


async def main() -> None:
    """Two entries: one where every agent answers, one where the habit agent is silent."""
    aggregator = Aggregator()
    agents = ("mood", "goals", "habits")
    first = aggregator.expect("entry-1", agents, deadline=5.0)
    second = aggregator.expect("entry-2", agents, deadline=0.05)
    arrivals = [Reply("entry-1", "goals", "2 of 3 runs this week"),
                Reply("entry-2", "mood", "calmer than yesterday"),
                Reply("entry-1", "goals", "2 of 3 runs this week"),
                Reply("entry-1", "mood", "tired but hopeful"),
                Reply("entry-9", "mood", "who asked?"),
                Reply("entry-1", "coach-x", "hello"),
                Reply("entry-1", "habits", "slept 7 h, like last week"),
                Reply("entry-2", "goals", "no goal mentioned")]
    for reply in arrivals:
        print(f"{reply.correlation_id} from {reply.agent:<7}: {aggregator.receive(reply)}")
    done = await first  # completed by its last reply, well before its deadline
    print(f"entry-1 complete={done.complete} {done.replies}")
    partial = await second  # completed by its deadline
    print(f"entry-2 complete={partial.complete} missing={list(partial.missing)} {partial.replies}")
    late = aggregator.receive(Reply("entry-2", "habits", "sorry, busy"))
    print(f"entry-2 from habits : {late}")
    print(f"ignored: {dict(sorted(aggregator.ignored.items()))}")


if __name__ == "__main__":
    asyncio.run(main())
