"""The end-to-end coaching flow in memory: the page's test, the renamed channel, the clock and ids."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time

import pytest

from snippets.testing.end_to_end_testing_coaching_flow import (
    CET,
    MORNING,
    AppWithRenamedChannel,
    CoachingApp,
    ManualClock,
    SeededIds,
    await_until,
    main,
)
from snippets.testing.end_to_end_testing_coaching_flow import (
    test_an_entry_flows_through_every_agent_into_the_evening_reflection as page_test,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_the_page_test_passes_against_the_app():
    page_test(CoachingApp)


def test_the_renamed_channel_is_caught_when_the_coach_never_answers():
    with pytest.raises(AssertionError) as caught:
        page_test(AppWithRenamedChannel)
    assert str(caught.value) == "waited 1.0 s for the coach to congratulate ana; last saw []"


def test_the_clock_runs_each_daily_job_once_per_day_passed_in_order():
    async def scenario():
        ran: list[tuple[str, date, datetime]] = []
        clock = ManualClock(MORNING)

        def job(name):
            async def run_job(day: date) -> None:
                ran.append((name, day, clock.now()))
            return run_job

        clock.every_day_at(time(21, 0), job("reflection"))
        clock.every_day_at(time(6, 0), job("morning"))
        await clock.advance_to(MORNING.replace(day=16, hour=6))
        await clock.advance_to(MORNING.replace(day=16, hour=6))  # nothing is due twice
        return ran, clock.now()

    ran, now = run(scenario())
    assert [(name, day.day, at.hour) for name, day, at in ran] == [
        ("reflection", 14, 21), ("morning", 15, 6), ("reflection", 15, 21), ("morning", 16, 6)]
    assert now == MORNING.replace(day=16, hour=6)


def test_the_clock_refuses_to_go_back():
    with pytest.raises(ValueError, match="time only moves forward"):
        run(ManualClock(MORNING).advance_to(MORNING.replace(hour=6)))


def test_seeded_ids_repeat_for_a_seed_and_differ_between_seeds():
    first, again, other = SeededIds(7), SeededIds(7), SeededIds(8)
    ids = [first.new() for _ in range(3)]
    assert ids == [again.new() for _ in range(3)]
    assert ids[0] != other.new() and len(set(ids)) == 3
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_await_until_returns_what_it_waited_for_and_accepts_coroutines():
    async def scenario():
        box: list[int] = []
        asyncio.get_running_loop().call_later(0.02, box.append, 1)
        got = await await_until(lambda: box, what="a value")

        async def ask() -> str:
            return "yes"

        return got, await await_until(ask, what="an answer")

    assert run(scenario()) == ([1], "yes")


def test_await_until_fails_at_its_deadline_saying_what_it_saw():
    with pytest.raises(AssertionError, match=r"waited 0.05 s for the goal; last saw 0"):
        run(await_until(lambda: 0, what="the goal", timeout=0.05))


def test_a_day_without_goal_or_moods_still_gets_a_reflection_and_failures_are_kept():
    async def scenario():
        app = CoachingApp(ManualClock(MORNING), SeededIds(1))
        await app.start()
        await app.write_entry("ben", "Read a book")
        await app.bus.publish("journal.entry_written", {"kind": "entry", "user": "ben",
                                                        "entry_id": "x", "text": None})
        await await_until(app.bus.caught_up, what="quiet")
        await app.clock.advance_to(MORNING.replace(hour=22))
        await app.bus.close()
        return app

    app = run(scenario())
    assert app.reflections == {("ben", MORNING.date()): (
        "Friday 14 March: 2 entries; moods: none noted; no goal progress; coach: nothing sent")}
    assert sorted(f.split(":")[0] for f in app.bus.failures) == ["goal_tracker", "mood_agent"]


def test_the_demo_prints_seeded_ids_and_the_catch(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        "seeded ids, the same on every run: 6513270e..., d23f0824...",
        "CoachingApp: passed",
        "AppWithRenamedChannel: caught",
        "  waited 1.0 s for the coach to congratulate ana; last saw []",
    ]
    assert CET.utcoffset(None).total_seconds() == 3600
