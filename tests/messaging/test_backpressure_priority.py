"""Priority queue with aging: urgent first, equal ranks in order, and no starvation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.backpressure_priority import (
    AgingPriorityQueue,
    SimulatedClock,
    main,
)
from tests.messaging.conftest import run


def test_the_demo_starves_the_digest_under_strict_priority_and_serves_it_with_aging(capsys):
    main()
    assert capsys.readouterr().out == """\
second   strict          aging 2.5 s
0        crisis-0        crisis-0
1        crisis-1        crisis-1
2        crisis-2        crisis-2
3        crisis-3        coaching-1
4        crisis-4        crisis-3
5        crisis-5        crisis-4
6        crisis-6        weekly-digest
7        crisis-7        crisis-5
waiting  coaching-1      crisis-6
         weekly-digest   crisis-7
"""


def test_strict_priority_serves_the_most_urgent_first_and_equal_priorities_in_order():
    queue: AgingPriorityQueue[str] = AgingPriorityQueue(aging=None, clock=SimulatedClock())
    for item, priority in [("a", 2), ("b", 0), ("c", 1), ("d", 0), ("e", 2)]:
        queue.put(item, priority)
    assert [queue.get_nowait() for _ in range(5)] == ["b", "d", "c", "a", "e"]


puts = st.lists(st.tuples(st.floats(0, 5), st.integers(0, 3), st.booleans()), max_size=50)


@given(st.floats(0.1, 10), puts)
def test_every_get_returns_the_lowest_rank_present_ties_in_arrival_order(aging, steps):
    """Against a model: rank = put time + priority * aging, then arrival order."""
    clock = SimulatedClock()
    queue: AgingPriorityQueue[int] = AgingPriorityQueue(aging=aging, clock=clock)
    present: dict[int, tuple[float, int]] = {}
    for n, (advance, priority, take) in enumerate(steps):
        clock.now += advance
        queue.put(n, priority)
        present[n] = (clock.now + priority * aging, n)
        if take:
            got = queue.get_nowait()
            assert present[got] == min(present.values())
            del present[got]
    assert len(queue) == len(present)


@given(st.floats(0.5, 5), st.integers(1, 4))
def test_a_low_priority_item_is_served_before_any_urgent_item_put_after_its_bound(aging, p):
    """Under constant urgent load (one priority-0 put per second, one get per second)."""
    clock = SimulatedClock()
    queue: AgingPriorityQueue[str] = AgingPriorityQueue(aging=aging, clock=clock)
    queue.put("low", p)
    second = 0
    while True:
        clock.now = float(second)
        queue.put(f"urgent@{second}", 0)
        got = queue.get_nowait()
        if got == "low":
            break
        assert second <= p * aging  # every urgent item served first was put before the bound
        second += 1


def test_without_aging_the_low_priority_item_waits_for_ever():
    clock = SimulatedClock()
    queue: AgingPriorityQueue[str] = AgingPriorityQueue(aging=None, clock=clock)
    queue.put("low", 1)
    for second in range(1000):
        clock.now = float(second)
        queue.put(f"urgent@{second}", 0)
        assert queue.get_nowait() != "low"


def test_get_waits_for_a_put_and_an_empty_get_nowait_says_so():
    async def scenario() -> str:
        queue: AgingPriorityQueue[str] = AgingPriorityQueue()
        with pytest.raises(IndexError, match="get from an empty priority queue"):
            queue.get_nowait()
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.put("entry", 1)
        return await waiting

    assert run(scenario()) == "entry"


@pytest.mark.parametrize("priority", [-1, 1.5, "high", True, None])
def test_a_priority_that_is_not_a_non_negative_int_is_refused_and_nothing_is_queued(priority):
    queue: AgingPriorityQueue[str] = AgingPriorityQueue(clock=SimulatedClock())
    queue.put("kept", 1)
    with pytest.raises(ValueError, match="priority must be an int >= 0"):
        queue.put("bad", priority)
    assert len(queue) == 1 and queue.get_nowait() == "kept"


@pytest.mark.parametrize("aging", [0, -1.0])
def test_an_aging_step_that_is_not_positive_is_refused(aging):
    with pytest.raises(ValueError, match="aging must be positive seconds per level, or None"):
        AgingPriorityQueue(aging=aging)
