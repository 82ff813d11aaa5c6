"""The load-levelling simulation: conservation, the rate limit, and the price in waiting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.backpressure_load_levelling import (
    ARRIVALS,
    RATE,
    main,
    simulate,
)


def test_the_demo_compares_no_queue_a_large_queue_and_a_small_one(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "21:00:00       5 |       5 /   0 /   0       5 /   0 /   5       5 /   0 /   5"
    assert out[-3:] == [
        "no queue  : handled 175, refused 125, max backlog   0, max wait 0 s, took 10 s",
        "queue 1000: handled 300, refused   0, max backlog 150, max wait 5 s, took 13 s",
        "queue 60  : handled 210, refused  90, max backlog  60, max wait 2 s, took 10 s"]


def test_a_queue_big_enough_handles_the_whole_burst_at_the_agents_pace():
    run = simulate(sum(ARRIVALS))
    assert sum(run.handled) == sum(ARRIVALS) and sum(run.refused) == 0
    assert max(run.handled) == RATE
    assert len(run.handled) == -(-sum(ARRIVALS) // RATE) + 1  # 12 full seconds + the 5 at 21:00:00


@given(st.lists(st.integers(0, 80), max_size=20), st.one_of(st.none(), st.integers(1, 200)),
       st.integers(1, 40))
def test_nothing_is_created_or_lost_and_the_agent_never_exceeds_its_rate(arrivals, capacity, rate):
    run = simulate(capacity, arrivals, rate)
    assert sum(run.handled) + sum(run.refused) == sum(arrivals)
    assert all(h <= rate for h in run.handled)
    assert all(w >= 0 for w in run.waits) and len(run.waits) == sum(run.handled)
    if capacity is not None:
        assert all(d <= capacity for d in run.depth)
    else:
        assert not any(run.waits)  # no queue, no waiting: only refusals


@pytest.mark.parametrize(("args", "kwargs"), [((0,), {}), ((None,), {"rate": 0}),
                                              ((10,), {"arrivals": [5, -1]})])
def test_an_impossible_setup_is_refused_with_the_values_named(args, kwargs):
    with pytest.raises(ValueError, match="need rate >= 1, capacity >= 1 or None, arrivals >= 0"):
        simulate(*args, **kwargs)
