"""Stateful property-based testing of an event store against a model, with Hypothesis.

The store appends events to streams in SQLite with optimistic concurrency:
``append(stream, events, expected_version)`` succeeds only if the stream is
at ``expected_version`` events (``0`` for a stream that must be new, ``None``
for "any"), and every event also gets a position in one global order.

The model is what the store promises, in plain Python: a dict of lists and a
list. :class:`EventStoreMachine` has Hypothesis append to random streams with
random expected versions and, after every step, compares each stream and the
global order with the model. ``main()`` runs it against the store and
against :class:`StoreWithFalsyZero`, which checks the expected version with
``if expected_version:`` and so lets ``0`` through: a one-token bug that
example-based tests rarely probe and Hypothesis finds in a few steps.
"""

from __future__ import annotations

import sqlite3

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)


class ConcurrencyError(Exception):
    """The stream is not at the version the writer expected; nothing was appended."""


# --8<-- [start:store]
class SQLiteEventStore:
    """Streams of events in one table; ``position`` is the global order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.isolation_level = None  # transactions are begun and ended below, explicitly
        conn.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                     "stream TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL, "
                     "UNIQUE (stream, version))")

    def version(self, stream: str) -> int:
        return self.conn.execute("SELECT count(*) FROM events WHERE stream = ?",
                                 (stream,)).fetchone()[0]

    def check(self, stream: str, expected_version: int | None) -> None:
        current = self.version(stream)
        if expected_version is not None and expected_version != current:
            raise ConcurrencyError(f"{stream!r} is at version {current}, "
                                   f"not the expected {expected_version}")

    def append(self, stream: str, events: list[str], expected_version: int | None) -> int:
        """Append all of ``events`` or none; return the stream's new version."""
        if not stream or not events:
            raise ValueError(f"need a stream name and at least one event, got {stream!r}, {events!r}")
        self.conn.execute("BEGIN IMMEDIATE")  # the write lock first, so no writer slips in
        try:
            self.check(stream, expected_version)
            version = self.version(stream)
            self.conn.executemany(
                "INSERT INTO events (stream, version, data) VALUES (?, ?, ?)",
                [(stream, version + n, data) for n, data in enumerate(events, start=1)])
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return version + len(events)

    def read(self, stream: str) -> list[str]:
        return [d for (d,) in self.conn.execute(
            "SELECT data FROM events WHERE stream = ? ORDER BY version", (stream,))]

    def read_all(self) -> list[tuple[str, str]]:
        return self.conn.execute("SELECT stream, data FROM events ORDER BY position").fetchall()


class StoreWithFalsyZero(SQLiteEventStore):
    """Deliberately broken: ``0`` is falsy, so "this stream must be new" is never checked."""

    def check(self, stream: str, expected_version: int | None) -> None:
        current = self.version(stream)
        if expected_version and expected_version != current:
            raise ConcurrencyError(f"{stream!r} is at version {current}, "
                                   f"not the expected {expected_version}")
# --8<-- [end:store]


# --8<-- [start:machine]
class EventStoreMachine(RuleBasedStateMachine):
    """Random appends with random expected versions, checked against a dict and a list."""

    store_type: type[SQLiteEventStore] = SQLiteEventStore

    def __init__(self) -> None:
        super().__init__()
        self.store = self.store_type(sqlite3.connect(":memory:"))
        self.streams: dict[str, list[str]] = {}   # the model
        self.global_order: list[tuple[str, str]] = []

    @rule(stream=st.sampled_from(["goal-1", "goal-2"]),
          events=st.lists(st.sampled_from(["GoalSet", "RunLogged", "GoalReached"]),
                          min_size=1, max_size=3),
          expected=st.none() | st.integers(0, 4))
    def append(self, stream: str, events: list[str], expected: int | None) -> None:
        current = len(self.streams.get(stream, []))
        if expected is not None and expected != current:
            try:
                self.store.append(stream, events, expected)
            except ConcurrencyError:
                return
            raise AssertionError(f"append to {stream!r} at version {current} expecting "
                                 f"{expected} was accepted")
        assert self.store.append(stream, events, expected) == current + len(events)
        self.streams.setdefault(stream, []).extend(events)
        self.global_order += [(stream, e) for e in events]

    @invariant()
    def streams_and_global_order_match_the_model(self) -> None:
        for stream in ("goal-1", "goal-2"):
            assert self.store.read(stream) == self.streams.get(stream, [])
        assert self.store.read_all() == self.global_order
# --8<-- [end:machine]


SETTINGS = settings(max_examples=60, stateful_step_count=15, deadline=None, derandomize=True,
                    database=None)


def machine_for(store: type[SQLiteEventStore]) -> type[EventStoreMachine]:
    return type(f"{store.__name__}Machine", (EventStoreMachine,), {"store_type": store})


# --8<-- [start:test]
def test_the_event_store_behaves_like_its_model(store=SQLiteEventStore):
    run_state_machine_as_test(machine_for(store), settings=SETTINGS)
# --8<-- [end:test]


def shortest_failure(store: type[SQLiteEventStore]) -> tuple[str, list[str]] | None:
    """Run the machine; return the failure and the steps Hypothesis shrank it to, if any."""
    try:
        test_the_event_store_behaves_like_its_model(store)
    except AssertionError as failure:
        steps = [n for n in getattr(failure, "__notes__", []) if n.startswith("state.append")]
        return str(failure), steps
    return None


def main() -> None:
    for store in (SQLiteEventStore, StoreWithFalsyZero):
        found = shortest_failure(store)
        if found is None:
            print(f"{store.__name__}: {SETTINGS.max_examples} programs, property held")
            continue
        failure, steps = found
        print(f"{store.__name__}: caught\n  {failure}\n  shortest program:")
        print("\n".join(f"    {step}" for step in steps))


if __name__ == "__main__":
    main()
