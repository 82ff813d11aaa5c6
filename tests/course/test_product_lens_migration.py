"""Strangler fig migration: across every switch of the route, no session is lost or counted twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.product_lens_migration import GoalService, Monolith, main


def test_the_demo_moves_from_call_to_event_and_counts_every_entry_once(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        "step 0 call  : goal service down -> the save failed: goal service unavailable",
        "step 1 both  : relay delivered 2, 2 already counted by the call",
        ("step 2 event : goal service down, 2 entries saved anyway; relay delivered 0 while it"
        " was down"),
        "               relay killed after delivering entry 6",
        "               restarted relay delivered 1, 1 already counted",
        "result       : 6 entries stored, 6 sessions counted",
    ]


operations = st.lists(st.one_of(
    st.tuples(st.just("save"), st.sampled_from(["ana", "ben"])),
    st.tuples(st.just("route"), st.sampled_from(["call", "both", "event"])),
    st.tuples(st.just("relay"), st.none()),
    st.tuples(st.just("crash relay"), st.integers(1, 30)),
    st.tuples(st.just("goals up"), st.booleans()),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_sequence_of_switches_outages_and_relay_crashes_counts_each_entry_exactly_once(ops):
    goals = GoalService()
    journal = Monolith(goals)
    for op, arg in ops:
        if op == "save":
            try:
                journal.save_entry(arg, "an entry")
            except ConnectionError:
                assert journal.route in ("call", "both") and not goals.up
        elif op == "route":
            journal.route = arg
        elif op == "relay":
            journal.relay()
        elif op == "crash relay":
            try:
                journal.relay(crash_after=arg)
            except SystemExit:
                pass
        else:
            goals.up = arg
    goals.up = True
    journal.relay()  # the relay catches up once everything is up
    for user in ("ana", "ben"):
        assert goals.sessions(user) == journal.entries(user)
    stored = {row[0] for row in journal.db.execute("SELECT id FROM entries")}
    counted = {row[0] for row in goals.db.execute("SELECT entry_id FROM counted")}
    assert counted == stored  # none lost, none invented
    assert journal.db.execute("SELECT count(*) FROM outbox WHERE published = 0").fetchone() == (0,)


def test_a_save_that_fails_on_the_call_stores_neither_the_entry_nor_its_event():
    goals = GoalService()
    journal = Monolith(goals, route="both")
    goals.up = False
    with pytest.raises(ConnectionError, match="goal service unavailable"):
        journal.save_entry("ana", "ran 5 km")
    assert journal.entries("ana") == 0
    assert journal.db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_with_events_only_saves_succeed_while_the_goal_service_is_down():
    goals = GoalService()
    journal = Monolith(goals, route="event")
    goals.up = False
    for text in ("a", "b", "c"):
        journal.save_entry("ana", text)
    assert journal.relay() == (0, 0)
    goals.up = True
    assert journal.relay() == (3, 0)
    assert goals.sessions("ana") == 3


def test_a_relay_that_meets_an_outage_mid_batch_keeps_the_rest_in_order():
    goals = GoalService()
    journal = Monolith(goals, route="event")
    for user in ("ana", "ben", "ana"):
        journal.save_entry(user, "x")
    calls = []
    real = goals.count_session

    def flaky(entry_id: int, user: str) -> bool:
        calls.append(entry_id)
        if len(calls) == 2:
            raise ConnectionError("goal service unavailable")
        return real(entry_id, user)

    goals.count_session = flaky
    assert journal.relay() == (1, 0)
    assert journal.relay() == (2, 0)
    assert calls == [1, 2, 2, 3]


def test_an_unknown_route_is_refused_by_name_and_the_flag_is_unchanged():
    journal = Monolith(GoalService(), route="both")
    with pytest.raises(ValueError, match=r"route must be one of \('call', 'both', 'event'\), "
                                         r"not 'events'"):
        journal.route = "events"
    assert journal.route == "both"
