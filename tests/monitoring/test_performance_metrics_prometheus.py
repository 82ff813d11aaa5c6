"""Tests of the consumer metrics: what each counter, histogram and gauge records."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from snippets.monitoring.performance_metrics_prometheus import (
    ConsumerMetrics,
    Event,
    FakeClock,
    InstrumentedConsumer,
    main,
)


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


@pytest.fixture
def setup():
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    clock = FakeClock(100.0)
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        clock.now += event.data.get("cost", 0.0)
        if event.data.get("fail"):
            raise ValueError("bad")

    consumer = InstrumentedConsumer("coach", handler, metrics, clock=clock, wall=clock,
                                    remember=3)
    return registry, consumer, clock, calls


def feed(consumer, *events):
    async def go():
        return [await consumer(e) for e in events]
    return asyncio.run(asyncio.wait_for(go(), 5))


def test_every_outcome_is_counted_and_starts_at_zero(setup):
    registry, consumer, _, _ = setup
    for outcome in ("handled", "failed", "duplicate"):
        assert value(registry, "coaching_events_consumed_total", consumer="coach",
                     outcome=outcome) == 0.0
    outcomes = feed(consumer, Event("a", "T", 100, {}), Event("a", "T", 100, {}),
                    Event("b", "T", 100, {"fail": True}))
    assert outcomes == ["handled", "duplicate", "failed"]
    assert [value(registry, "coaching_events_consumed_total", consumer="coach", outcome=o)
            for o in ("handled", "failed", "duplicate")] == [1.0, 1.0, 1.0]


def test_a_duplicate_is_not_handled_again_but_a_failed_event_is_retried(setup):
    _registry, consumer, _, calls = setup
    feed(consumer, Event("a", "T", 100, {}), Event("a", "T", 100, {}))
    failing = Event("b", "T", 100, {"fail": True})
    assert feed(consumer, failing, failing) == ["failed", "failed"]
    assert calls == ["a", "b", "b"]


def test_processing_time_is_observed_for_failures_too_and_age_only_for_handled_events(setup):
    registry, consumer, _clock, _ = setup
    feed(consumer, Event("a", "T", 99.0, {"cost": 0.25}), Event("b", "T", 99.0,
                                                                 {"cost": 0.5, "fail": True}))
    assert value(registry, "coaching_event_processing_seconds_count", consumer="coach") == 2
    assert value(registry, "coaching_event_processing_seconds_sum", consumer="coach") == 0.75
    assert value(registry, "coaching_event_processing_seconds_bucket", consumer="coach",
                 le="0.25") == 1
    assert value(registry, "coaching_event_age_seconds_count", consumer="coach") == 1
    assert value(registry, "coaching_event_age_seconds_sum", consumer="coach") == 1.25


def test_ages_of_minutes_and_hours_fall_in_buckets_of_their_own(setup):
    """The page's stories are an age of 40 minutes and of four hours: each must land
    below a bucket bound of its own, or a percentile over the histogram cannot exceed
    the last bound (five minutes, before)."""
    registry, consumer, _, _ = setup
    feed(consumer, Event("a", "T", 100.0 - 40 * 60, {}), Event("b", "T", 100.0 - 4 * 3600, {}))
    bucket = "coaching_event_age_seconds_bucket"
    assert value(registry, bucket, consumer="coach", le="900.0") == 0
    assert value(registry, bucket, consumer="coach", le="3600.0") == 1  # the 40 minutes
    assert value(registry, bucket, consumer="coach", le="14400.0") == 2  # and the four hours


def test_an_event_from_a_publisher_whose_clock_runs_ahead_has_age_zero_not_negative(setup):
    registry, consumer, _, _ = setup
    feed(consumer, Event("a", "T", 500.0, {}))
    assert value(registry, "coaching_event_age_seconds_sum", consumer="coach") == 0.0
    assert value(registry, "coaching_event_age_seconds_bucket", consumer="coach", le="0.1") == 1


def test_only_the_most_recent_ids_are_remembered_so_memory_stays_bounded(setup):
    _registry, consumer, _, _calls = setup
    events = [Event(i, "T", 100, {}) for i in "abcd"]
    feed(consumer, *events)
    assert feed(consumer, events[3], events[0]) == ["duplicate", "handled"]  # 'a' was forgotten
    assert len(consumer._seen) == 3


def test_a_cancelled_handler_is_timed_but_not_counted_as_an_outcome(setup):
    registry, consumer, _, _ = setup

    async def cancelled(event):
        raise asyncio.CancelledError()

    consumer.handler = cancelled
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(consumer(Event("x", "T", 100, {})))
    assert value(registry, "coaching_event_processing_seconds_count", consumer="coach") == 1
    assert value(registry, "coaching_events_consumed_total", consumer="coach",
                 outcome="failed") == 0


def test_the_queue_depth_gauge_is_read_when_scraped():
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    waiting = [1, 2, 3]
    metrics.depth.labels("coaching.entries").set_function(lambda: len(waiting))
    assert value(registry, "coaching_queue_depth_messages", queue="coaching.entries") == 3
    waiting.clear()
    assert value(registry, "coaching_queue_depth_messages", queue="coaching.entries") == 0
    assert b'coaching_queue_depth_messages{queue="coaching.entries"} 0.0' in generate_latest(registry)


def test_the_demo_scrape_is_valid_exposition_text_with_the_burst_halfway(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out
    exposition, summary = out.rsplit("# after the burst", 1)
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    consumed = "coaching_events_consumed_total"
    assert samples[(consumed, (("consumer", "mood-agent"), ("outcome", "handled")))] == 6
    assert samples[(consumed, (("consumer", "mood-agent"), ("outcome", "duplicate")))] == 1
    assert samples[("coaching_queue_depth_messages", (("queue", "coaching.entries"),))] == 4
    assert samples[("coaching_dead_letters_total",
                    (("consumer", "mood-agent"), ("reason", "poison")))] == 1
    assert families["coaching_event_processing_seconds"].type == "histogram"
    assert "_created" not in exposition
    assert summary == ": depth 0, 9 handled, duplicate rate 2/12 = 17%\n"


def race(consumer, *events, release_after: int):
    """Deliver ``events`` concurrently; the handler holds each one until all have arrived."""
    async def go():
        arrived, go_on = 0, asyncio.Event()
        inner = consumer.handler

        async def held(event: Event) -> None:
            await go_on.wait()
            await inner(event)

        async def deliver(event: Event) -> str:
            nonlocal arrived
            arrived += 1
            if arrived == release_after:
                go_on.set()
            return await consumer(event)

        consumer.handler = held
        return await asyncio.gather(*(deliver(e) for e in events))
    return asyncio.run(asyncio.wait_for(go(), 5))


def test_concurrent_deliveries_of_one_id_are_handled_once_and_the_rest_counted_as_duplicates(
        setup):
    registry, consumer, _, calls = setup
    outcomes = race(consumer, *[Event("a", "T", 100, {}) for _ in range(5)],
                    Event("b", "T", 100, {}), release_after=6)
    assert outcomes == ["handled", "duplicate", "duplicate", "duplicate", "duplicate", "handled"]
    assert sorted(calls) == ["a", "b"]  # each id reached the handler once
    assert [value(registry, "coaching_events_consumed_total", consumer="coach", outcome=o)
            for o in ("handled", "failed", "duplicate")] == [2.0, 0.0, 4.0]
    assert consumer._in_flight == {}


def test_a_delivery_waiting_behind_a_failing_one_of_its_id_is_handled_not_dropped(setup):
    _registry, consumer, _, calls = setup
    failing = Event("b", "T", 100, {"fail": True})
    assert race(consumer, failing, Event("b", "T", 100, {}), release_after=2) == [
        "failed", "handled"]
    assert calls == ["b", "b"]
    assert consumer._in_flight == {}


def test_after_a_failed_first_copy_only_one_of_the_waiting_copies_runs_the_handler(setup):
    registry, consumer, _, calls = setup
    failing_once = Event("c", "T", 100, {"fail": True})
    inner = consumer.handler

    async def fails_only_the_first_time(event: Event) -> None:
        await asyncio.sleep(0)  # the handler yields: the other copies get to run meanwhile
        await inner(failing_once if not calls else event)

    consumer.handler = fails_only_the_first_time
    outcomes = race(consumer, *[Event("c", "T", 100, {}) for _ in range(4)], release_after=4)
    assert outcomes == ["failed", "handled", "duplicate", "duplicate"]
    assert calls == ["c", "c"]
    assert [value(registry, "coaching_events_consumed_total", consumer="coach", outcome=o)
            for o in ("handled", "failed", "duplicate")] == [1.0, 1.0, 2.0]


def test_a_cancelled_copy_lets_the_copy_waiting_behind_it_run(setup):
    _registry, consumer, _, calls = setup

    async def scenario():
        entered, never = asyncio.Event(), asyncio.Event()
        inner = consumer.handler

        async def hangs_the_first_time(event: Event) -> None:
            if not entered.is_set():
                entered.set()
                await never.wait()
            await inner(event)

        consumer.handler = hangs_the_first_time
        first = asyncio.create_task(consumer(Event("d", "T", 100, {})))
        await entered.wait()
        second = asyncio.create_task(consumer(Event("d", "T", 100, {})))
        await asyncio.sleep(0)  # the second copy is now waiting for the first
        first.cancel()
        return await second, first.cancelled()

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == ("handled", True)
    assert calls == ["d"] and consumer._in_flight == {}
