"""Handlers tested through the in-memory bus: the page's tests, the misspelt channel, drain()."""

from __future__ import annotations

import asyncio

import pytest

from snippets.testing.unit_testing_in_memory_bus import (
    TESTS,
    Event,
    GoalTracker,
    GoalTrackerOnTheWrongChannel,
    HandlerFailed,
    InMemoryBus,
    entry,
    main,
    run_tests,
    wire,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


@pytest.mark.parametrize("page_test", TESTS, ids=lambda t: t.__name__)
def test_every_test_on_the_page_passes_against_the_goal_tracker(page_test):
    page_test(GoalTracker)


def test_the_misspelt_channel_is_caught_and_the_negative_test_passes_vacuously():
    results = dict(run_tests(GoalTrackerOnTheWrongChannel))
    assert results["test_an_entry_with_a_distance_logs_progress_and_announces_it"] == (
        "after one entry the bus carried ['journal.entry_written']")
    assert results["test_a_redelivered_entry_is_counted_once"] == "running totals announced: []"
    assert results["test_each_writer_has_their_own_total"] == "totals: {}"
    assert results["test_an_entry_without_a_distance_announces_nothing"] is None


def test_the_handler_called_directly_works_so_only_the_bus_test_sees_the_wiring_bug():
    async def scenario():
        bus = InMemoryBus()
        async with bus:
            tracker = GoalTrackerOnTheWrongChannel(bus)
            await tracker.on_entry(Event("journal.entry_written", entry("e1", "Ran 3 km")))
            await bus.drain()
        return tracker.totals

    assert run(scenario()) == {"ana": 3.0}


def test_drain_raises_what_a_handler_raised_instead_of_letting_it_vanish():
    async def scenario():
        bus, tracker, _ = await wire(GoalTracker)
        async with bus:
            await bus.publish("journal.entry_written", {"entry_id": "e1", "user": "ana"})
            with pytest.raises(HandlerFailed, match="GoalTracker on journal.entry_written: KeyError"):
                await bus.drain()
            await bus.publish("journal.entry_written", entry("e2", "Ran 1 km"))
            await bus.drain()  # the failure was reported once; the worker carried on
        return tracker.totals

    assert run(scenario()) == {"ana": 1.0}


def test_drain_waits_for_events_that_handlers_publish_in_turn():
    async def scenario():
        seen: list[str] = []
        bus = InMemoryBus()
        async with bus:
            async def first(event: Event) -> None:
                await asyncio.sleep(0)
                await bus.publish("second", {})

            async def second(event: Event) -> None:
                await asyncio.sleep(0)
                seen.append(event.channel)

            bus.subscribe("first", first, name="first")
            bus.subscribe("second", second, name="second")
            await bus.publish("first", {})
            await bus.drain()
            return seen

    assert run(scenario()) == ["second"]


def test_closing_the_bus_stops_every_worker():
    async def scenario():
        bus = InMemoryBus()
        async with bus:
            GoalTracker(bus)
            workers = list(bus._workers)
        return workers

    assert all(worker.cancelled() for worker in run(scenario()))


def test_the_demo_reports_the_wiring_bug_caught_three_times(capsys):
    main()
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "GoalTracker (listens to 'journal.entry_written'): 4 passed, 0 failed"
    assert "'journal.entry.written'): 1 passed, 3 failed" in out
    assert out.count("caught by") == 3


class GoalTrackerCountingRedeliveries(GoalTracker):
    """A mutant: it forgets which entries it has seen, so a redelivery counts again."""

    async def on_entry(self, event: Event) -> None:
        self.seen.clear()
        await super().on_entry(event)


def test_a_tracker_that_counts_a_redelivery_is_caught_by_exactly_the_redelivery_test():
    failed = {name: why for name, why in run_tests(GoalTrackerCountingRedeliveries) if why}
    assert failed == {"test_a_redelivered_entry_is_counted_once":
                      "running totals announced: [2.0, 4.0, 8.0]"}
