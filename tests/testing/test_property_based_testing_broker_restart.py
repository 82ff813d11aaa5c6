"""Fault injection with real restarts of redis-server: AOF keeps everything, the bugs lose entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as redis

from snippets.testing import property_based_testing_broker_restart as module
from snippets.testing.property_based_testing_broker_restart import (
    AckAfterHandling,
    AckOnReceipt,
    connect,
    main,
)
from snippets.testing.property_based_testing_broker_restart import (
    test_a_fault_in_mid_stream_loses_no_entry as page_test,
)
from tests.engines import free_port

RECORDED = Path(__file__).resolve().parents[2] / "docs/data/outputs/testing"


def restart_of(engine):
    """The fault: stop redis-server (SIGTERM, it flushes the AOF) and start it again."""
    async def restart() -> None:
        await asyncio.to_thread(engine.restart)
    return restart


@pytest.fixture
def aof_redis(redis_factory, monkeypatch):
    engine = redis_factory(appendonly=True)
    monkeypatch.setenv("REDIS_URL", engine.url)
    return engine


def test_the_consumer_resumes_after_a_real_restart_with_nothing_lost(aof_redis):
    report: dict[str, int] = {}
    page_test(AckAfterHandling, fault=restart_of(aof_redis), report=report)
    assert report == {"handled": 20, "redelivered": 2}


def test_acking_on_receipt_is_caught_losing_the_entries_in_flight(aof_redis):
    with pytest.raises(AssertionError, match="^lost entry-0004, entry-0005$"):
        page_test(AckOnReceipt, fault=restart_of(aof_redis))


def test_a_redis_without_an_append_only_file_is_caught_too(redis_factory, monkeypatch):
    engine = redis_factory(appendonly=False)
    monkeypatch.setenv("REDIS_URL", engine.url)
    with pytest.raises(AssertionError, match="^lost entry-0004, .*, entry-0010$"):
        page_test(AckAfterHandling, fault=restart_of(engine))


def test_a_restart_while_both_sides_are_busy_loses_nothing(aof_redis):
    pid_before = aof_redis.process.pid
    published = [f"entry-{n:04d}" for n in range(1, 201)]

    async def scenario():
        client, handled = connect(aof_redis.url), []
        consumer = AckAfterHandling(client, "journal.busy", handled)
        await consumer.join_group()

        async def produce() -> None:
            for entry_id in published:
                await client.xadd("journal.busy", {"entry_id": entry_id})
                await asyncio.sleep(0)

        async def consume() -> None:
            while set(handled) != set(published):
                await consumer.catch_up()
                await asyncio.sleep(0.005)  # poll interval while the producer is still going

        async def restart_in_mid_stream() -> None:
            while len(handled) < 50:
                await asyncio.sleep(0.005)
            await restart_of(aof_redis)()

        await asyncio.gather(produce(), consume(), restart_in_mid_stream())
        await client.aclose()
        return handled

    handled = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert set(handled) == set(published)
    assert aof_redis.process.pid != pid_before  # it really was restarted


def test_the_demo_matches_its_recorded_output(redis_server, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main() == 0
    assert capsys.readouterr().out == (
        RECORDED / "property_based_testing_broker_restart.txt").read_text()


def test_the_demo_says_how_to_point_it_at_redis_when_there_is_none(monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(module, "connect", redis.from_url)  # no retries: fail at once
    assert main() == 1
    assert "Set REDIS_URL to a Redis you may write to." in capsys.readouterr().err


def test_a_poll_without_a_crash_handles_and_acknowledges_the_whole_batch(redis_server):
    async def scenario():
        client, handled = connect(redis_server.url), []
        consumer = AckAfterHandling(client, "journal.poll", handled)
        await client.delete("journal.poll")
        await consumer.join_group()
        for n in range(3):
            await client.xadd("journal.poll", {"entry_id": f"e{n}"})
        await consumer.poll(10)
        pending = (await client.xpending("journal.poll", "reflection"))["pending"]
        await client.aclose()
        return handled, pending

    assert asyncio.run(scenario()) == (["e0", "e1", "e2"], 0)


def test_joining_a_group_on_a_key_that_is_not_a_stream_is_refused(redis_server):
    from redis.exceptions import ResponseError

    async def scenario():
        client = connect(redis_server.url)
        await client.set("journal.not_a_stream", "x")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await AckAfterHandling(client, "journal.not_a_stream", []).join_group()
        value = await client.get("journal.not_a_stream")
        await client.aclose()
        return value

    assert asyncio.run(scenario()) == "x"


def kill_and_start(engine):
    """The harder fault: SIGKILL to redis-server (no shutdown, no flush), then start it again."""
    async def crash() -> None:
        await asyncio.to_thread(engine.kill)
        await asyncio.to_thread(engine.start)
    return crash


def test_a_sigkilled_redis_with_aof_gives_back_every_acknowledged_write(aof_redis):
    pid_before = aof_redis.process.pid
    report: dict[str, int] = {}
    page_test(AckAfterHandling, fault=kill_and_start(aof_redis), report=report)
    assert report == {"handled": 20, "redelivered": 2}
    assert aof_redis.process.pid != pid_before


def test_acking_on_receipt_still_loses_the_entries_in_flight_after_a_sigkill(aof_redis):
    with pytest.raises(AssertionError, match="^lost entry-0004, entry-0005$"):
        page_test(AckOnReceipt, fault=kill_and_start(aof_redis))
