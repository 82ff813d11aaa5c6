"""Token bucket: burst, sustained rate, reservations and refusals, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.backpressure_rate_limit import (
    RateLimited,
    SimulatedClock,
    TokenBucket,
    main,
)
from tests.messaging.conftest import run


def test_the_demo_paces_nine_calls_refuses_long_waits_and_sheds_the_excess(capsys):
    run(main())
    assert capsys.readouterr().out == (
        "call starts at +s: [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]\n"
        "with max_wait 1 s:  waits 0.0 0.0 0.0 0.5 1.0, then 2 refused (retry in 1.5 s)\n"
        "try_acquire at 4/s: +++++.+.+.+. (8 of 12 admitted)\n")


def test_a_full_bucket_allows_the_burst_then_the_rate():
    clock = SimulatedClock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
    clock.now = 0.25  # one token back
    assert [bucket.try_acquire() for _ in range(2)] == [True, False]
    clock.now = 100.0  # never more than the burst saved up
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


def test_concurrent_acquires_are_served_in_arrival_order_each_after_its_exact_wait():
    bucket = TokenBucket(rate=10, burst=1, clock=SimulatedClock())
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> list[float]:
        return await asyncio.gather(*(bucket.acquire(sleep=sleep) for _ in range(4)))

    assert run(scenario()) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert slept == pytest.approx([0.1, 0.2, 0.3])  # nobody sleeps for nothing


def test_a_reservation_over_max_wait_is_refused_and_takes_nothing():
    clock = SimulatedClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock, max_wait=0.5)
    assert bucket.reserve(2) == 0.0
    with pytest.raises(RateLimited, match=r"1 token\(s\) in 1.00 s, over the 0.5 s allowed") as e:
        bucket.reserve()
    assert e.value.retry_after == pytest.approx(1.0)
    clock.now = 1.0  # had the refused call taken its token, this would fail
    assert bucket.try_acquire()


def test_a_clock_that_steps_back_adds_no_tokens():
    clock = SimulatedClock()
    clock.now = 5.0
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.try_acquire()
    clock.now = 2.0  # stepped back three seconds
    assert not bucket.try_acquire()
    clock.now = 5.5
    assert not bucket.try_acquire()
    clock.now = 6.0
    assert bucket.try_acquire()


@given(st.floats(0.5, 50), st.integers(1, 10),
       st.lists(st.tuples(st.floats(0, 2), st.integers(1, 3)), max_size=60))
def test_no_window_ever_grants_more_than_burst_plus_rate_times_its_length(rate, burst, steps):
    clock = SimulatedClock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    granted: list[tuple[float, int]] = []
    for advance, n in steps:
        clock.now += advance
        n = min(n, burst)
        if bucket.try_acquire(n):
            granted.append((clock.now, n))
    for i, (start, _) in enumerate(granted):
        total = 0
        for end, n in granted[i:]:
            total += n
            assert total <= burst + rate * (end - start) + 1e-6


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rate": 0, "burst": 1}, "rate must be positive, got 0"),
    ({"rate": 1, "burst": 0.5}, "burst must be at least 1, got 0.5"),
])
def test_a_bucket_that_could_never_grant_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenBucket(**kwargs)


@pytest.mark.parametrize("n", [0, -1, 4])
def test_asking_for_more_tokens_than_the_bucket_holds_is_refused_and_takes_nothing(n):
    bucket = TokenBucket(rate=1, burst=3, clock=SimulatedClock())
    with pytest.raises(ValueError, match=f"cannot take {n} tokens from a bucket of 3"):
        bucket.try_acquire(n)
    with pytest.raises(ValueError, match="it would never be satisfied"):
        bucket.reserve(n)
    assert bucket.try_acquire(3)
