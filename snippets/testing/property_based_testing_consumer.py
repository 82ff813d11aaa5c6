"""Stateful property-based testing of a consumer against a model, with Hypothesis.

The consumer reads ``RunLogged`` events from an at-least-once feed, starting
at its committed offset, and adds each run to the runner's total. It may
crash anywhere in a batch; it then restarts from the database, which
survived, and reads again from the last committed offset, so some events
arrive twice. Its inbox (the ids it has applied, stored with the totals in
one transaction) makes the second delivery harmless.

Instead of hand-picking scenarios, :class:`ConsumerMachine` lets Hypothesis
generate hundreds of programs of publishes, polls and crashes, and after
every step compares the consumer's totals with a model: the sum of the runs
applied at least once. When a program breaks the property, Hypothesis
shrinks it to the shortest one that still does. ``main()`` runs the machine
against the consumer and against :class:`ConsumerWithoutInbox`, the
deliberately broken one, and prints the steps Hypothesis found.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)


class Crash(Exception):
    """The consumer process died here."""


@dataclass(frozen=True)
class RunLogged:
    offset: int
    user: str
    km: int


# --8<-- [start:system]
class Feed:
    """The broker: an append-only log read from an offset, so delivery is at least once."""

    def __init__(self) -> None:
        self.events: list[RunLogged] = []

    def publish(self, user: str, km: int) -> RunLogged:
        self.events.append(event := RunLogged(len(self.events), user, km))
        return event

    def read(self, offset: int, limit: int) -> list[RunLogged]:
        return self.events[offset:offset + limit]


@dataclass
class Database:
    """What survives a crash: totals, the inbox of applied offsets, the committed offset."""

    totals: Counter[str] = field(default_factory=Counter)
    inbox: set[int] = field(default_factory=set)
    offset: int = 0


class TotalsConsumer:
    """Adds each logged run to its runner's total."""

    def __init__(self, feed: Feed, db: Database) -> None:
        self.feed, self.db = feed, db

    def apply(self, event: RunLogged) -> None:
        """One transaction: the inbox row and the new total commit together."""
        if event.offset not in self.db.inbox:
            self.db.inbox.add(event.offset)
            self.db.totals[event.user] += event.km

    def poll(self, limit: int, crash_after: int | None = None) -> int:
        """Apply up to ``limit`` events, then commit the offset (or crash before it)."""
        batch = self.feed.read(self.db.offset, limit)
        for applied, event in enumerate(batch):
            if applied == crash_after:
                raise Crash(f"after {applied} of {len(batch)} events")
            self.apply(event)
        if crash_after is not None:
            raise Crash(f"after the whole batch of {len(batch)}, before the commit")
        self.db.offset += len(batch)
        return len(batch)


class ConsumerWithoutInbox(TotalsConsumer):
    """Deliberately broken: no inbox, so a redelivered run is counted again."""

    def apply(self, event: RunLogged) -> None:
        self.db.totals[event.user] += event.km
# --8<-- [end:system]


# --8<-- [start:machine]
class ConsumerMachine(RuleBasedStateMachine):
    """Random programs of publishes, polls and crashes, checked against a model."""

    consumer_type: type[TotalsConsumer] = TotalsConsumer

    def __init__(self) -> None:
        super().__init__()
        self.feed, self.db = Feed(), Database()
        self.consumer = self.consumer_type(self.feed, self.db)
        self.applied: set[int] = set()  # the model: offsets applied at least once

    @rule(user=st.sampled_from(["ana", "ben"]), km=st.integers(1, 10))
    def publish(self, user: str, km: int) -> None:
        self.feed.publish(user, km)

    @rule(limit=st.integers(1, 4))
    def poll(self, limit: int) -> None:
        start = self.db.offset
        self.applied |= set(range(start, start + self.consumer.poll(limit)))

    @rule(limit=st.integers(1, 4), after=st.integers(0, 4))
    def crash_and_restart(self, limit: int, after: int) -> None:
        start, waiting = self.db.offset, len(self.feed.read(self.db.offset, limit))
        try:
            self.consumer.poll(limit, crash_after=after)
        except Crash:
            self.applied |= set(range(start, start + min(after, waiting)))
        self.consumer = self.consumer_type(self.feed, self.db)  # a new process, same database

    @invariant()
    def totals_count_each_applied_run_once(self) -> None:
        expected: Counter[str] = Counter()
        for offset in self.applied:
            expected[self.feed.events[offset].user] += self.feed.events[offset].km
        assert self.db.totals == expected, (
            f"totals {dict(self.db.totals)}, but the runs applied add up to {dict(expected)}")
# --8<-- [end:machine]


SETTINGS = settings(max_examples=60, stateful_step_count=15, deadline=None, derandomize=True,
                    database=None)


def machine_for(consumer: type[TotalsConsumer]) -> type[ConsumerMachine]:
    return type(f"{consumer.__name__}Machine", (ConsumerMachine,), {"consumer_type": consumer})


# --8<-- [start:test]
def test_the_consumer_counts_every_run_once_whatever_the_crashes(consumer=TotalsConsumer):
    run_state_machine_as_test(machine_for(consumer), settings=SETTINGS)
# --8<-- [end:test]


def shortest_failure(consumer: type[TotalsConsumer]) -> tuple[str, list[str]] | None:
    """Run the machine; return the failure and the steps Hypothesis shrank it to, if any."""
    try:
        test_the_consumer_counts_every_run_once_whatever_the_crashes(consumer)
    except AssertionError as failure:
        notes = getattr(failure, "__notes__", [])
        steps = [n for n in notes if n.startswith("state.") and "totals_count" not in n
                 and n != "state.teardown()"]
        return str(failure), steps
    return None


def main() -> None:
    for consumer in (TotalsConsumer, ConsumerWithoutInbox):
        found = shortest_failure(consumer)
        if found is None:
            print(f"{consumer.__name__}: {SETTINGS.max_examples} programs, property held")
            continue
        failure, steps = found
        print(f"{consumer.__name__}: caught\n  {failure}\n  shortest program:")
        print("\n".join(f"    {step}" for step in steps))


if __name__ == "__main__":
    main()
