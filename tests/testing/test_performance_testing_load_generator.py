"""Load generators, the histogram and the virtual clock: coordinated omission is caught."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.testing.performance_testing_load_generator import (
    TESTS,
    ConsumerPool,
    LatencyHistogram,
    closed_loop_load,
    main,
    measure,
    open_loop_load,
    run_virtual,
)


@pytest.mark.parametrize("page_test", TESTS, ids=lambda t: t.__name__)
def test_every_test_on_the_page_passes_with_the_open_loop_generator(page_test):
    page_test(open_loop_load)


def test_the_closed_loop_generator_is_caught_hiding_the_stall_and_the_offered_load():
    failed = {}
    for test in TESTS:
        try:
            test(closed_loop_load)
        except AssertionError as error:
            failed[test.__name__] = str(error)
    assert failed == {
        "test_throughput_follows_the_offered_rate_below_saturation": "48 of 100 events/s offered",
        "test_a_stall_shows_up_in_the_p99": "p99 44 ms hides a 1000 ms stall",
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=100.0), min_size=1, max_size=200),
       st.sampled_from([1, 25, 50, 90, 95, 99, 99.9, 100]))
def test_a_percentile_is_the_nearest_rank_sample_or_at_most_1_percent_above_it(samples, p):
    histogram = LatencyHistogram()
    for sample in samples:
        histogram.record(sample)
    exact = sorted(samples)[math.ceil(p / 100 * len(samples)) - 1]
    assert exact * (1 - 1e-9) <= histogram.percentile(p) <= exact * 1.01 * (1 + 1e-9)


def test_the_histogram_keeps_few_buckets_for_many_samples():
    histogram = LatencyHistogram()
    for i in range(100_000):
        histogram.record(0.001 + (i % 1000) * 1e-5)  # 1 ms to 11 ms
    assert histogram.count == 100_000 and len(histogram.counts) <= 250
    assert histogram.percentile(100) == histogram.max


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_a_latency_that_is_not_a_duration_is_refused_and_nothing_is_counted(bad):
    histogram = LatencyHistogram()
    histogram.record(0.0)  # zero is allowed: it counts in the lowest bucket
    with pytest.raises(ValueError, match="finite number of seconds >= 0"):
        histogram.record(bad)
    assert histogram.count == 1 and histogram.percentile(50) == 0.0


def test_a_percentile_needs_samples_and_a_sensible_p():
    with pytest.raises(ValueError, match="no latencies recorded"):
        LatencyHistogram().percentile(50)
    histogram = LatencyHistogram()
    histogram.record(0.01)
    for p in (0, 101, -5):
        with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
            histogram.percentile(p)


def test_virtual_time_jumps_over_sleeps_and_keeps_their_order():
    async def scenario():
        loop = asyncio.get_running_loop()
        order: list[str] = []

        async def after(delay: float, name: str) -> None:
            await asyncio.sleep(delay)
            order.append(f"{name}@{loop.time():g}")

        await asyncio.gather(after(3600, "hour"), after(60, "minute"), after(0, "now"))
        return order

    assert run_virtual(scenario()) == ["now@0", "minute@60", "hour@3600"]


def test_virtual_time_reports_a_deadlock_instead_of_hanging():
    async def forever():
        await asyncio.get_running_loop().create_future()

    with pytest.raises(RuntimeError, match="deadlock: nothing is scheduled"):
        run_virtual(forever())


def test_service_times_are_the_same_whichever_consumer_asks_first():
    async def scenario():
        first, second = ConsumerPool(0, seed=5), ConsumerPool(0, seed=5)
        forward = [first.service_time(i) for i in range(5)]
        backward = [second.service_time(i) for i in reversed(range(5))][::-1]
        return forward, backward

    forward, backward = run_virtual(scenario())
    assert forward == backward and all(0.005 < s < 0.1 for s in forward)


def test_the_generators_drive_a_real_event_loop_too():
    async def scenario():
        return await measure(open_loop_load, 2, rate=500, seconds=0.05)

    result = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.sent == result.latencies.count == 25 and result.seconds > 0


def test_the_demo_shows_saturation_and_the_hidden_stall(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["1", "48"] and lines[5].split()[:2] == ["8", "199"]
    assert lines[8].split()[:6] == ["open_loop_load", "p50", "20.8", "ms", "p99", "942.0"]
    assert lines[9].split()[:6] == ["closed_loop_load", "p50", "19.8", "ms", "p99", "44.4"]
    assert lines[-3:] == [
        "closed_loop_load: 1 passed",
        ("  caught by test_throughput_follows_the_offered_rate_below_saturation: "
         "48 of 100 events/s offered"),
        "  caught by test_a_stall_shows_up_in_the_p99: p99 44 ms hides a 1000 ms stall",
    ]
