"""API composition and the CQRS view: the same answers when all is well, and what each does
when a service is down, hangs, or has just changed."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.cqrs.api_composition import (
    Composer,
    GoalsService,
    JournalService,
    OverviewView,
    ServiceUnavailableError,
    main,
)
from snippets.cqrs.api_composition import EventLog as Log

USERS, DAYS = ["ana", "ben", "cy"], ["2025-03-03", "2025-03-04"]
writes = st.lists(st.one_of(
    st.tuples(st.just("entry"), st.sampled_from(USERS), st.sampled_from(DAYS),
              st.integers(0, 300)),
    st.tuples(st.just("goal"), st.sampled_from(USERS), st.integers(1, 5)),
    st.tuples(st.just("session"), st.integers(0, 9), st.sampled_from(DAYS)),
), max_size=30)


def build(steps):
    log = Log()
    journal, goals = JournalService(log), GoalsService(log)
    owners = []
    for step in steps:
        if step[0] == "entry":
            journal.write_entry(step[1], f"e{len(log.events)}", step[2], step[3])
        elif step[0] == "goal":
            owners.append(step[1])
            goals.set_goal(step[1], f"g{len(owners):02}", f"Goal {len(owners)}", step[2])
        elif owners:
            index = step[1] % len(owners)
            goals.log_session(owners[index], f"g{index + 1:02}", step[2])
    return log, journal, goals


@settings(max_examples=30, deadline=None)
@given(steps=writes)
def test_composition_and_the_view_give_the_same_answers_when_all_is_up(steps):
    log, journal, goals = build(steps)
    composer, view = Composer(journal, goals), OverviewView()
    view.catch_up(log)

    async def check() -> None:
        for day in DAYS:
            for user in USERS:
                composed = await composer.overview(user, day)
                viewed = view.overview(user, day)
                assert composed.pop("missing") == []
                assert composed == {k: v for k, v in viewed.items() if k != "as_of"}
            assert await composer.idle_writers(day) == view.idle_writers(day)

    asyncio.run(check())


def test_an_overview_costs_two_calls_and_a_question_about_everyone_one_per_writer():
    _, journal, goals = build([("entry", u, DAYS[0], 10) for u in USERS])
    composer = Composer(journal, goals)

    async def check() -> None:
        await composer.overview("ana", DAYS[0])
        assert composer.calls == {"journal": 1, "goals": 1}
        composer.calls.clear()
        assert await composer.idle_writers(DAYS[0]) == USERS
        assert composer.calls == {"journal": 1, "goals": 3}

    asyncio.run(check())


def test_a_hanging_service_gives_a_partial_answer_that_says_what_is_missing():
    _, journal, goals = build([("entry", "ana", DAYS[0], 10), ("goal", "ana", 2)])
    goals.state = "hanging"
    composer = Composer(journal, goals, timeout=0.05)
    answer = asyncio.run(composer.overview("ana", DAYS[0]))
    assert answer == {"entries": 1, "words": 10, "goals": None,
                      "missing": ["goals service: no answer in 0.05 s"]}


def test_a_join_that_needs_a_service_that_is_down_fails_naming_it():
    _, journal, goals = build([("entry", "ana", DAYS[0], 10)])
    goals.state = "down"
    with pytest.raises(ServiceUnavailableError, match="goals service refused the connection"):
        asyncio.run(Composer(journal, goals).idle_writers(DAYS[0]))


def test_the_view_answers_with_both_services_down_and_is_stale_until_it_catches_up():
    log, journal, goals = build([("entry", "ana", DAYS[0], 10), ("goal", "ana", 2),
                                 ("session", 0, DAYS[0])])
    view = OverviewView()
    view.catch_up(log)
    journal.state = goals.state = "down"
    assert view.overview("ana", DAYS[0]) == {"entries": 1, "words": 10,
                                             "goals": ["Goal 1 1/2"], "as_of": 3}
    journal.write_entry("ana", "e9", DAYS[0], 5)
    assert view.overview("ana", DAYS[0])["entries"] == 1  # published, not yet applied
    assert view.catch_up(log) == 1
    assert view.overview("ana", DAYS[0])["entries"] == 2
    assert view.catch_up(log) == 0


def test_the_view_skips_events_it_does_not_use():
    log, _, _ = build([("entry", "ana", DAYS[0], 10)])
    log.publish("GoalRenamed", user="ana", goal_id="g01", title="Run")
    view = OverviewView()
    assert view.catch_up(log) == 2
    assert view.overview("ana", DAYS[0]) == {"entries": 1, "words": 10, "goals": [], "as_of": 2}


def test_an_event_that_fails_rolls_back_the_whole_catch_up_so_a_retry_counts_each_once():
    """The view applies a batch in one transaction: an event it cannot apply (here one
    without its word count) leaves the view and its position as they were; once the
    event is repaired, the retry applies every event of the batch exactly once."""
    log, _, _ = build([("entry", "ana", DAYS[0], 10)])
    log.publish("EntryWritten", user="ana", day=DAYS[0])  # no "words"
    view = OverviewView()
    with pytest.raises(KeyError, match="words"):
        view.catch_up(log)
    assert view.overview("ana", DAYS[0]) == {"entries": 0, "words": 0, "goals": [], "as_of": 0}
    log.events[1][1]["words"] = 5
    assert view.catch_up(log) == 2
    assert view.overview("ana", DAYS[0]) == {"entries": 2, "words": 15, "goals": [], "as_of": 2}


def test_main_compares_both_ways_through_failures(capsys):
    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("idle writers   : composed ['ben', 'cy'] with 4 calls; view ['ben', 'cy'] "
                        "with 1 query")
    assert lines[3] == ("goals hangs    : composed {'entries': 2, 'words': 300, 'goals': None, "
                        "'missing': ['goals service: no answer in 0.1 s']}")
    assert lines[5] == ("               : view     {'entries': 2, 'words': 300, 'goals': "
                        "['Run 5 km 1/3'], 'as_of': 6}")
    assert lines[6] == "new entry      : composed 3 entries, view 2 (stale)"
