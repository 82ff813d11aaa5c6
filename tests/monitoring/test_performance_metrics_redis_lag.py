"""Tests of consumer-group lag and pending entries read from a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
import redis.asyncio as redis
from prometheus_client import CollectorRegistry

from snippets.monitoring.performance_metrics_redis_lag import LagGauges, main, read_lag
from tests.engines import free_port

_names = itertools.count(1)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def stream_with(url: str, entries: int):
    client = redis.from_url(url, decode_responses=True)
    stream = f"test.mon.lag.{next(_names)}"
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    ids = [await client.xadd(stream, {"n": str(n)}) for n in range(entries)]
    return client, stream, ids


async def read(client, stream, worker, count, acks=0):
    [(_, entries)] = await client.xreadgroup("g", worker, {stream: ">"}, count=count)
    for entry_id, _ in entries[:acks]:
        await client.xack(stream, "g", entry_id)


def gauge(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_lag_counts_unread_entries_and_pending_counts_unacknowledged_ones(redis_server):
    async def scenario():
        client, stream, _ = await stream_with(redis_server.url, 10)
        await read(client, stream, "w1", 4, acks=2)
        await read(client, stream, "w2", 2)
        sample = await read_lag(client, stream, "g")
        await client.aclose()
        return stream, sample

    stream, sample = run(scenario())
    assert (sample.length, sample.lag, sample.pending) == (10, 4, 4)
    assert sample.pending_by_consumer == {"w1": 2, "w2": 2}
    assert sample.oldest_pending_idle_ms is not None and sample.oldest_pending_idle_ms >= 0
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    assert gauge(registry, "coaching_consumer_lag_messages", stream=stream, group="g") == 4
    assert gauge(registry, "coaching_consumer_pending_messages", stream=stream, group="g") == 4
    assert gauge(registry, "coaching_consumer_pending_by_consumer_messages",
                 stream=stream, group="g", consumer="w2") == 2


def test_an_idle_group_with_everything_acknowledged_reports_zeros(redis_server):
    async def scenario():
        client, stream, _ = await stream_with(redis_server.url, 3)
        await read(client, stream, "w1", 3, acks=3)
        sample = await read_lag(client, stream, "g")
        await client.aclose()
        return sample

    sample = run(scenario())
    assert (sample.lag, sample.pending, sample.pending_by_consumer) == (0, 0, {})
    assert sample.oldest_pending_idle_ms is None
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    assert gauge(registry, "coaching_consumer_oldest_pending_idle_seconds",
                 stream=sample.stream, group="g") == 0.0


def test_when_redis_cannot_compute_the_lag_the_gauge_is_nan_not_zero(redis_server):
    async def scenario():
        client, stream, ids = await stream_with(redis_server.url, 5)
        await read(client, stream, "w1", 1)
        await client.xdel(stream, ids[3])  # a hole in the unread range
        sample = await read_lag(client, stream, "g")
        await client.aclose()
        return sample

    sample = run(scenario())
    assert sample.lag is None
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    assert math.isnan(gauge(registry, "coaching_consumer_lag_messages",
                            stream=sample.stream, group="g"))


def test_a_consumer_that_leaves_the_group_loses_its_series(redis_server):
    async def scenario():
        client, stream, _ = await stream_with(redis_server.url, 4)
        await read(client, stream, "w1", 2)
        await read(client, stream, "w2", 2)
        registry = CollectorRegistry()
        gauges = LagGauges(registry)
        gauges.update(await read_lag(client, stream, "g"))
        before = gauge(registry, "coaching_consumer_pending_by_consumer_messages",
                       stream=stream, group="g", consumer="w2")
        await client.xgroup_delconsumer(stream, "g", "w2")
        gauges.update(await read_lag(client, stream, "g"))
        after = gauge(registry, "coaching_consumer_pending_by_consumer_messages",
                      stream=stream, group="g", consumer="w2")
        await client.aclose()
        return before, after

    assert run(scenario()) == (2.0, None)


def test_an_unknown_group_is_named_in_the_error(redis_server):
    async def scenario():
        client, stream, _ = await stream_with(redis_server.url, 1)
        try:
            with pytest.raises(LookupError, match=f"stream '{stream}' has no consumer group 'nope'"):
                await read_lag(client, stream, "nope")
        finally:
            await client.aclose()

    run(scenario())


def test_the_demo_prints_lag_4_and_pending_4(redis_server, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "length=10 lag=4 pending=4 by consumer={'w1': 2, 'w2': 2}"
    assert 'coaching_consumer_lag_messages{group="mood-agent",stream="demo.coaching.lag"} 4.0' in lines


def test_without_redis_the_demo_says_where_it_looked(monkeypatch, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    run(main())
    assert f"No Redis at {url}" in capsys.readouterr().err
