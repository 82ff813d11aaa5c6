"""The event store's stateful test, the falsy-zero bug it finds, and concurrent writers."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from snippets.testing import property_based_testing_event_store as module
from snippets.testing.property_based_testing_event_store import (
    SETTINGS,
    ConcurrencyError,
    SQLiteEventStore,
    StoreWithFalsyZero,
    main,
    shortest_failure,
)


@pytest.fixture(scope="module")
def outcomes():
    return {store: shortest_failure(store) for store in (SQLiteEventStore, StoreWithFalsyZero)}


def test_the_page_test_holds_for_the_store(outcomes):
    assert outcomes[SQLiteEventStore] is None


def test_the_falsy_zero_is_caught_in_two_appends(outcomes):
    assert outcomes[StoreWithFalsyZero] == (
        "append to 'goal-1' at version 1 expecting 0 was accepted",
        ["state.append(events=['GoalSet'], expected=None, stream='goal-1')",
         "state.append(events=['GoalSet'], expected=0, stream='goal-1')"])


def test_a_conflicting_append_stores_nothing_and_says_why():
    store = SQLiteEventStore(sqlite3.connect(":memory:"))
    store.append("goal-1", ["GoalSet"], expected_version=0)
    with pytest.raises(ConcurrencyError, match="'goal-1' is at version 1, not the expected 0"):
        store.append("goal-1", ["RunLogged", "RunLogged"], expected_version=0)
    assert store.read("goal-1") == ["GoalSet"] and store.read_all() == [("goal-1", "GoalSet")]


@pytest.mark.parametrize(("stream", "events"), [("", ["GoalSet"]), ("goal-1", [])])
def test_an_empty_stream_name_or_batch_is_refused_and_nothing_changes(stream, events):
    store = SQLiteEventStore(sqlite3.connect(":memory:"))
    store.append("goal-1", ["GoalSet"], None)
    with pytest.raises(ValueError, match="need a stream name and at least one event"):
        store.append(stream, events, None)
    assert store.read_all() == [("goal-1", "GoalSet")]


def test_a_failed_insert_rolls_back_the_whole_batch():
    store = SQLiteEventStore(sqlite3.connect(":memory:"))
    with pytest.raises(sqlite3.IntegrityError):
        store.append("goal-1", ["GoalSet", None], None)  # data is NOT NULL: the 2nd insert fails
    assert store.read_all() == [] and store.version("goal-1") == 0


def test_two_writers_expecting_the_same_version_cannot_both_win(tmp_path):
    path = tmp_path / "events.db"
    SQLiteEventStore(sqlite3.connect(path))
    barrier, outcomes = threading.Barrier(8), []

    def writer(n: int) -> None:
        store = SQLiteEventStore(sqlite3.connect(path, timeout=30))
        barrier.wait()
        try:
            store.append("goal-1", [f"GoalSet by writer {n}"], expected_version=0)
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("refused")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
    assert SQLiteEventStore(sqlite3.connect(path)).version("goal-1") == 1


def test_the_demo_prints_the_held_property_and_the_two_step_program(outcomes, monkeypatch, capsys):
    monkeypatch.setattr(module, "shortest_failure", outcomes.__getitem__)
    main()
    assert capsys.readouterr().out.splitlines() == [
        f"SQLiteEventStore: {SETTINGS.max_examples} programs, property held",
        "StoreWithFalsyZero: caught",
        "  append to 'goal-1' at version 1 expecting 0 was accepted",
        "  shortest program:",
        "    state.append(events=['GoalSet'], expected=None, stream='goal-1')",
        "    state.append(events=['GoalSet'], expected=0, stream='goal-1')",
    ]
