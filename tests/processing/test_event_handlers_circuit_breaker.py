"""The circuit-breaker contract, run on the hand-written breaker and on pybreaker's.

Time is a fake clock the tests move; nothing sleeps. Tests that hold only for
the hand-written breaker (one trial at a time, cancellation ignored) say so.
"""

from __future__ import annotations

import asyncio

import pytest

from snippets.processing import (
    event_handlers_circuit_breaker,
    event_handlers_circuit_breaker_pybreaker,
)
from snippets.processing.event_handlers_circuit_breaker import (
    CircuitBreaker,
    CircuitOpenError,
    main,
)


@pytest.fixture(params=[event_handlers_circuit_breaker, event_handlers_circuit_breaker_pybreaker],
                ids=["hand-written", "pybreaker"])
def impl(request):
    return request.param


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Downstream:
    """A fake coaching model whose next answers the test decides."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = True
        self.error: Exception = ConnectionError("connection refused")

    async def __call__(self, entry: str = "e") -> str:
        self.calls += 1
        if self.failing:
            raise self.error
        return f"ok {entry}"


OPEN_ERRORS = (event_handlers_circuit_breaker.CircuitOpenError,
               event_handlers_circuit_breaker_pybreaker.CircuitOpenError)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def attempt(breaker, downstream) -> str:
    try:
        return await breaker.call(downstream)
    except OPEN_ERRORS:
        return "rejected"
    except ConnectionError:
        return "failed"


def make(impl, clock, changes=None, **options):
    options = {"fail_max": 3, "reset_timeout": 30.0, **options}
    return impl.CircuitBreaker("coach", clock=clock, on_change=(
        (lambda old, new: changes.append((old, new))) if changes is not None else None),
        **options)


def test_failures_below_the_threshold_keep_it_closed_and_a_success_resets_the_count(impl):
    clock, model = Clock(), Downstream()
    breaker = make(impl, clock)

    async def scenario():
        outcomes = [await attempt(breaker, model) for _ in range(2)]
        model.failing = False
        outcomes.append(await attempt(breaker, model))
        model.failing = True
        outcomes += [await attempt(breaker, model) for _ in range(2)]
        return outcomes

    assert run(scenario()) == ["failed", "failed", "ok e", "failed", "failed"]
    assert breaker.state == "closed" and model.calls == 5


def test_the_threshold_opens_it_and_then_calls_fail_fast_without_reaching_the_downstream(impl):
    clock, model, changes = Clock(), Downstream(), []
    breaker = make(impl, clock, changes)

    async def scenario():
        outcomes = [await attempt(breaker, model) for _ in range(3)]
        clock.now = 10.0
        with pytest.raises(impl.CircuitOpenError, match="'coach' is open; retry in 20.0 s") as info:
            await breaker.call(model)
        outcomes += [await attempt(breaker, model) for _ in range(5)]
        return outcomes, info.value

    outcomes, error = run(scenario())
    assert outcomes == ["failed"] * 3 + ["rejected"] * 5
    assert model.calls == 3 and error.retry_after == pytest.approx(20.0)
    assert breaker.state == "open" and changes == [("closed", "open")]


def test_after_the_timeout_a_successful_trial_closes_it(impl):
    clock, model, changes = Clock(), Downstream(), []
    breaker = make(impl, clock, changes)

    async def scenario():
        for _ in range(3):
            await attempt(breaker, model)
        clock.now = 29.0
        assert await attempt(breaker, model) == "rejected"
        clock.now = 31.0
        model.failing = False
        return await attempt(breaker, model)

    assert run(scenario()) == "ok e"
    assert breaker.state == "closed" and model.calls == 4
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_a_failed_trial_opens_it_for_a_whole_new_timeout(impl):
    clock, model, changes = Clock(), Downstream(), []
    breaker = make(impl, clock, changes)

    async def scenario():
        for _ in range(3):
            await attempt(breaker, model)
        clock.now = 31.0
        trial = await attempt(breaker, model)
        clock.now = 60.0  # 29 s after the failed trial: still open
        still = await attempt(breaker, model)
        clock.now = 62.0
        model.failing = False
        return trial, still, await attempt(breaker, model)

    assert run(scenario()) == ("failed", "rejected", "ok e")
    assert model.calls == 5
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "open"),
                       ("open", "half-open"), ("half-open", "closed")]


def test_an_excluded_error_means_the_downstream_answered_and_never_opens_it(impl):
    clock, model = Clock(), Downstream()
    model.error = LookupError("no such goal")
    breaker = make(impl, clock, exclude=(LookupError,))

    async def scenario():
        for _ in range(6):
            with pytest.raises(LookupError):
                await breaker.call(model)

    run(scenario())
    assert breaker.state == "closed" and model.calls == 6


def test_the_breaker_passes_arguments_and_results_through(impl):
    breaker = make(impl, Clock())
    model = Downstream()
    model.failing = False
    assert run(breaker.call(model, "e-42")) == "ok e-42"


@pytest.mark.parametrize("bad", [dict(fail_max=0), dict(reset_timeout=0)])
def test_impossible_settings_are_refused(impl, bad):
    with pytest.raises(ValueError, match="need fail_max >= 1 and reset_timeout > 0"):
        impl.CircuitBreaker("coach", **bad)


def test_the_real_clock_is_the_default(impl):
    breaker = impl.CircuitBreaker("coach", fail_max=1, reset_timeout=3600)
    model = Downstream()

    async def scenario():
        await attempt(breaker, model)
        return await attempt(breaker, model)

    assert run(scenario()) == "rejected" and breaker.state == "open"


def test_hand_written_half_open_lets_exactly_one_trial_through_at_a_time():
    clock, model = Clock(), Downstream()
    breaker = CircuitBreaker("coach", fail_max=1, reset_timeout=30.0, clock=clock)

    async def scenario():
        await attempt(breaker, model)
        clock.now = 31.0
        release = asyncio.Event()

        async def slow_success() -> str:
            await release.wait()
            return "ok"

        trial = asyncio.create_task(breaker.call(slow_success))
        await asyncio.sleep(0)  # the trial is now in flight
        with pytest.raises(CircuitOpenError):
            await breaker.call(slow_success)  # a second caller is turned away
        release.set()
        return await trial

    assert run(scenario()) == "ok" and breaker.state == "closed"


def test_hand_written_cancellation_is_neither_a_failure_nor_a_success():
    clock = Clock()
    breaker = CircuitBreaker("coach", fail_max=1, reset_timeout=30.0, clock=clock)

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

    run(scenario())
    assert breaker.state == "closed"  # fail_max=1: one counted failure would have opened it


def test_the_demo_opens_rejects_probes_and_recovers(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out
    assert out.count("not called: circuit 'coaching-model' is open") == 3
    assert "breaker half-open -> open" in out and "breaker half-open -> closed" in out
    assert out.rstrip().endswith("e-9: reflection on e-9  [model calls so far: 6]")
