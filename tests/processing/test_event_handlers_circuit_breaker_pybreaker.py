"""pybreaker behind the hand-written breaker's interface: same decisions, known differences.

The shared contract runs on both in ``test_event_handlers_circuit_breaker.py``.
Here: a differential test (any sequence of outcomes and clock moves gives the
same decisions on both), and the one difference a reader must know about.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing import event_handlers_circuit_breaker as hand_written
from snippets.processing import (
    event_handlers_circuit_breaker_pybreaker as with_pybreaker,
)
from snippets.processing.event_handlers_circuit_breaker_pybreaker import (
    CircuitBreaker,
    CircuitOpenError,
    ClockStorage,
    main,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


steps = st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(1, 4))
def test_both_breakers_take_the_same_decision_on_any_sequence_of_calls(program, fail_max):
    async def replay(module):
        clock, log, changes = Clock(), [], []
        breaker = module.CircuitBreaker("coach", fail_max=fail_max, reset_timeout=30.5,
                                        clock=clock, on_change=lambda o, n: changes.append(n))
        for advance, succeeds in program:
            clock.now += advance  # whole seconds against a 30.5 s timeout: no ties

            async def downstream() -> str:
                log.append("called")
                if not succeeds:
                    raise ConnectionError("down")
                return "ok"

            try:
                log.append(await breaker.call(downstream))
            except ConnectionError:
                log.append("failed")
            except module.CircuitOpenError as error:
                log.append(f"rejected {error.retry_after:.1f}")
            log.append(breaker.state)
        return log, changes

    ours = asyncio.run(replay(hand_written))
    theirs = asyncio.run(replay(with_pybreaker))
    assert ours == theirs


def test_pybreaker_counts_a_cancelled_call_as_a_failure_unlike_the_hand_written_one():
    breaker = CircuitBreaker("coach", fail_max=1, reset_timeout=30.0, clock=Clock())

    async def scenario():
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(breaker.call(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert breaker.state == "open"  # a shutdown can trip a pybreaker breaker


def test_the_clock_storage_reports_no_opening_until_the_breaker_opens():
    clock = Clock()
    storage = ClockStorage(clock)
    assert storage.opened_at is None
    breaker = CircuitBreaker("coach", fail_max=1, reset_timeout=30.0, clock=clock)

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(breaker.call(fail))
    clock.now = 12.0
    with pytest.raises(CircuitOpenError, match="retry in 18.0 s"):
        asyncio.run(breaker.call(fail))


def test_the_demo_prints_exactly_what_the_hand_written_demo_prints(capsys):
    asyncio.run(hand_written.main())
    expected = capsys.readouterr().out
    asyncio.run(main())
    assert capsys.readouterr().out == expected


def test_pybreaker_lets_every_concurrent_call_through_while_half_open():
    clock = Clock()
    breaker = CircuitBreaker("coach", fail_max=1, reset_timeout=30.0, clock=clock)

    async def scenario():
        async def fail() -> None:
            raise ConnectionError("down")

        with pytest.raises(ConnectionError):
            await breaker.call(fail)
        clock.now = 31.0
        release, reached = asyncio.Event(), []

        async def slow() -> str:
            reached.append(1)
            await release.wait()
            return "ok"

        trials = [asyncio.create_task(breaker.call(slow)) for _ in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*trials), len(reached)

    results, reached = asyncio.run(scenario())
    assert results == ["ok"] * 3 and reached == 3  # the hand-written breaker lets one through
