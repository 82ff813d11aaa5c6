"""Tests of JetStream consumer info (pending, ack pending, redelivered) on a real NATS."""

from __future__ import annotations

import asyncio
import itertools

import nats
from nats.js.api import ConsumerConfig
from prometheus_client import CollectorRegistry

from snippets.monitoring.performance_metrics_nats_lag import LagGauges, main, read_lag
from tests.engines import free_port

_names = itertools.count(1)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def stream_with(url: str, count: int, **config):
    nc = await nats.connect(url)
    js = nc.jetstream()
    n = next(_names)
    stream, subject = f"TEST_MON_LAG_{n}", f"test.mon.lag.{n}"
    await js.add_stream(name=stream, subjects=[subject])
    for i in range(count):
        await js.publish(subject, f"entry-{i}".encode())
    sub = await js.pull_subscribe(subject, durable="coach", stream=stream,
                                  config=ConsumerConfig(**config) if config else None)
    return nc, js, stream, sub


def test_pending_ack_pending_and_redelivered_follow_what_the_consumer_did(nats_server):
    async def scenario():
        nc, js, stream, sub = await stream_with(nats_server.url, 10)
        untouched = await read_lag(js, stream, "coach")
        got = await sub.fetch(4, timeout=5)
        await got[0].ack_sync()
        await got[1].ack_sync()
        await nc.request(got[2].reply, b"-NAK", timeout=5)
        again = await sub.fetch(1, timeout=5)
        sample = await read_lag(js, stream, "coach")
        for msg in [again[0], got[3]]:
            await msg.ack_sync()
        done = await read_lag(js, stream, "coach")
        await nc.close()
        return untouched, again[0], sample, done

    untouched, again, sample, done = run(scenario())
    assert (untouched.num_pending, untouched.num_ack_pending) == (10, 0)
    assert (again.data, again.metadata.num_delivered) == (b"entry-2", 2)
    assert (sample.num_pending, sample.num_ack_pending, sample.num_redelivered) == (6, 2, 1)
    assert (sample.delivered_stream_seq, sample.ack_floor_stream_seq) == (4, 2)
    assert (done.num_pending, done.num_ack_pending, done.ack_floor_stream_seq) == (6, 0, 4)


def test_a_message_never_acknowledged_is_redelivered_after_the_ack_wait(nats_server):
    async def scenario():
        nc, js, stream, sub = await stream_with(nats_server.url, 1, ack_wait=0.5)
        [first] = await sub.fetch(1, timeout=5)  # taken, then the worker "hangs"
        [second] = await sub.fetch(1, timeout=5)  # returns once the ack wait has run out
        sample = await read_lag(js, stream, "coach")
        await second.ack_sync()
        await nc.close()
        return first, second, sample

    first, second, sample = run(scenario())
    assert first.data == second.data == b"entry-0"
    assert second.metadata.num_delivered == 2
    assert (sample.num_redelivered, sample.num_ack_pending, sample.num_pending) == (1, 1, 0)


def test_the_gauges_carry_the_sample(nats_server):
    async def scenario():
        nc, js, stream, sub = await stream_with(nats_server.url, 3)
        await sub.fetch(1, timeout=5)
        sample = await read_lag(js, stream, "coach")
        await nc.close()
        return sample

    sample = run(scenario())
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    labels = {"stream": sample.stream, "consumer": "coach"}
    assert registry.get_sample_value("coaching_jetstream_pending_messages", labels) == 2
    assert registry.get_sample_value("coaching_jetstream_ack_pending_messages", labels) == 1
    assert registry.get_sample_value("coaching_jetstream_redelivered_messages", labels) == 0


def test_the_demo_prints_the_consumer_numbers(nats_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    run(main())
    run(main())  # a second run starts from a fresh stream
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["redelivered: entry-3 (delivery 2)",
                         "num_pending=6 num_ack_pending=2 num_redelivered=1 delivered_seq=4 "
                         "ack_floor_seq=2"]
    assert lines[5:7] == lines[:2]


def test_without_nats_the_demo_says_where_it_looked(monkeypatch, capsys):
    url = f"nats://127.0.0.1:{free_port()}"
    monkeypatch.setenv("NATS_URL", url)
    run(main())
    assert f"No NATS at {url}" in capsys.readouterr().err
