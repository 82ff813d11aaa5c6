"""Lamport clocks: they respect causality, they give a total order, they cannot see concurrency."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from snippets.course.concept_sheet_lamport_clock import LamportClock, main
from tests.course.causality import run, steps


def test_the_demo_orders_causal_events_and_misorders_a_concurrent_one(capsys):
    main()
    assert capsys.readouterr().out == (
        "L=1  phone   set goal 10 km\n"
        "L=2  phone   sync to server\n"
        "L=3  phone   (offline) change goal to 12 km\n"
        "L=3  server  goal stored\n"
        "L=4  server  push to laptop\n"
        "L=5  laptop  goal received\n"
        "L=6  laptop  change goal to 5 km\n"
        "causal    : 'set 10 km' L=1 < 'change to 5 km' L=6, as causality requires\n"
        "concurrent: '12 km' L=3 < '5 km' L=6, yet neither device saw the other:"
        " Lamport cannot tell\n")


def test_a_receive_jumps_past_the_stamp_or_past_its_own_time():
    clock = LamportClock("server", 3)
    assert clock.receive(10) == 11
    assert clock.receive(2) == 12  # an old stamp still advances the clock
    assert clock.send() == 13 and clock.key() == (13, "server")


@pytest.mark.parametrize("stamp", [-1, "7", 2.5, True, None])
def test_a_bad_stamp_is_refused_by_name_and_the_clock_is_unchanged(stamp):
    clock = LamportClock("server", 4)
    with pytest.raises(ValueError, match=f"message stamp must be an int >= 0, not {stamp!r}"):
        clock.receive(stamp)
    assert clock.time == 4


@pytest.mark.parametrize(("node", "time"), [("", 0), (7, 0), ("phone", -1)])
def test_a_clock_needs_a_node_id_and_a_non_negative_start(node, time):
    with pytest.raises(ValueError, match="node must be|initial time must be"):
        LamportClock(node, time)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_if_a_happened_before_b_then_its_lamport_time_is_smaller(program):
    execution = run(program)
    events = execution.events
    for j in range(len(events)):
        for i in execution.reach[j]:
            assert events[i].lamport < events[j].lamport


@settings(max_examples=150, deadline=None)
@given(steps)
def test_time_then_node_is_a_total_order_that_never_contradicts_causality(program):
    execution = run(program)
    keys = [(e.lamport, e.node) for e in execution.events]
    assert len(set(keys)) == len(keys)  # no two events share a key: a total order
    rank = {key: r for r, key in enumerate(sorted(keys))}
    for j, key in enumerate(keys):
        for i in execution.reach[j]:
            assert rank[keys[i]] < rank[key]


def test_lamport_times_cannot_tell_a_causal_pair_from_a_concurrent_one():
    # The phone sends to the laptop, which then has one more event: causal.
    causal = run([("local", 0, 0), ("send", 0, 0), ("receive", 1, 0), ("local", 1, 0)])
    # The laptop has four events without ever hearing from the phone: concurrent.
    concurrent = run([("local", 0, 0), ("send", 0, 0)] + [("local", 1, 0)] * 4)
    pairs = {"causal": (causal, 1, 3), "concurrent": (concurrent, 1, 5)}
    assert causal.happened_before(1, 3)
    assert concurrent.concurrent(1, 5)
    stamps = {name: (x.events[a].lamport, x.events[b].lamport) for name, (x, a, b) in pairs.items()}
    assert stamps == {"causal": (2, 4), "concurrent": (2, 4)}  # identical: no way to tell
