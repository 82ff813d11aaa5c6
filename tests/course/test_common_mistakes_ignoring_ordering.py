"""Ignoring ordering: competing consumers reorder a user's events; partitions and sequence numbers do not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_ignoring_ordering import (
    GoalChanged,
    SequencedGoals,
    last_arrival_wins,
    main,
    run_workers,
)


def test_the_demo_loses_anas_latest_goal_only_with_competing_consumers(capsys):
    main()
    assert capsys.readouterr().out == (
        "competing consumers: handled ['ana#2', 'ben#1', 'ana#1'] -> goals {'ana': 10, 'ben': 3}\n"
        "partitioned by user: handled ['ben#1', 'ana#1', 'ana#2'] -> goals {'ben': 3, 'ana': 5}\n"
        "sequence numbers   : ['ana#2 held', 'ana#1 applied', 'ana#1 stale'] -> goals {'ana': 5}\n")


@st.composite
def event_streams(draw):
    """Events of three users in publish order, numbered per user, with random costs."""
    users = draw(st.lists(st.sampled_from(["ana", "ben", "caro"]), min_size=1, max_size=20))
    seqs: dict[str, int] = {}
    events = []
    for user in users:
        seqs[user] = seqs.get(user, 0) + 1
        events.append(GoalChanged(user, seqs[user], draw(st.integers(1, 50)),
                                  cost=draw(st.integers(1, 6))))
    return events


def per_user(events):
    return {u: [e.seq for e in events if e.user == u] for u in {e.user for e in events}}


def final_goals(events):
    return {e.user: e.km for e in events}


@settings(max_examples=100, deadline=None)
@given(event_streams(), st.integers(1, 4))
def test_fixed_partitioned_workers_keep_every_users_order_whatever_the_costs(events, workers):
    handled = run_workers(events, workers, by_key=True)
    assert sorted(handled, key=id) == sorted(events, key=id)  # nothing lost or doubled
    assert per_user(handled) == per_user(events)
    assert last_arrival_wins(handled) == final_goals(events)


def test_broken_competing_consumers_apply_an_older_goal_last():
    events = [GoalChanged("ana", 1, 10, cost=3), GoalChanged("ana", 2, 5, cost=1)]
    handled = run_workers(events, workers=2, by_key=False)
    assert [e.seq for e in handled] == [2, 1]
    assert last_arrival_wins(handled) == {"ana": 10}  # she asked for 5


@settings(max_examples=100, deadline=None)
@given(event_streams())
def test_broken_with_a_single_worker_the_order_holds_so_concurrency_is_what_breaks_it(events):
    assert run_workers(events, 1, by_key=False) == events


@settings(max_examples=100, deadline=None)
@given(event_streams(), st.randoms(use_true_random=False), st.integers(0, 5))
def test_fixed_sequence_numbers_restore_order_from_any_arrival_order_with_redeliveries(
        events, random, redeliveries):
    arrivals = events + [random.choice(events) for _ in range(redeliveries)]
    random.shuffle(arrivals)
    goals = SequencedGoals()
    applied: dict[str, list[int]] = {}
    for event in arrivals:
        before = goals.applied.get(event.user, 0)
        goals.handle(event)
        applied.setdefault(event.user, []).extend(
            range(before + 1, goals.applied.get(event.user, 0) + 1))
    assert applied == per_user(events)
    assert goals.goals == final_goals(events)
    assert goals.early == {}


def test_an_event_after_a_gap_waits_for_the_missing_one():
    goals = SequencedGoals()
    assert goals.handle(GoalChanged("ana", 1, 10)) == "applied"
    assert goals.handle(GoalChanged("ana", 3, 7)) == "held"
    assert goals.goals == {"ana": 10}
    assert goals.handle(GoalChanged("ana", 2, 5)) == "applied"
    assert goals.goals == {"ana": 7} and goals.applied == {"ana": 3}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seq": 0}, "ana #0: seq and cost must be >= 1"),
    ({"seq": 1, "cost": 0}, "ana #1: seq and cost must be >= 1"),
])
def test_a_malformed_event_is_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GoalChanged("ana", km=5, **kwargs)


def test_zero_workers_is_refused():
    with pytest.raises(ValueError, match="need at least one worker, not 0"):
        run_workers([GoalChanged("ana", 1, 5)], 0, by_key=True)
