"""Redis Streams consumer groups: the demo, lease-bound claiming, and a restart with AOF."""

from __future__ import annotations

import pytest

from snippets.messaging.message_queues_redis import connect, main
from tests.messaging.conftest import run
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints(redis_server, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    run(main())
    assert capsys.readouterr().out == EXPECTED


def test_nobody_can_claim_an_entry_before_its_lease_runs_out(redis_server):
    async def scenario():
        broker = await connect(redis_server.url, lease=30)
        first = await broker.consumer("lease.entries", "coaches", "first")
        second = await broker.consumer("lease.entries", "coaches", "second")
        await broker.publish("lease.entries", b"entry-1")
        held = await first.receive()
        stolen = await second.receive(timeout=0.2)
        pending = await broker.client.xpending("lease.entries", "coaches")
        await broker.client.delete("lease.entries")
        await broker.close()
        return held, stolen, pending

    held, stolen, pending = run(scenario())
    assert [m.body for m in held] == [b"entry-1"] and stolen == []
    assert pending["pending"] == 1 and pending["consumers"][0]["name"] == b"first"


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "SIGKILL"])
def test_acks_and_pending_entries_survive_a_redis_restart(redis_factory, crash):
    """With the append-only file, a write Redis has answered is in the file (the
    operating system's cache at least) before the reply goes out: a graceful shutdown
    and a SIGKILL of the server both keep every entry and every acknowledgement."""
    engine = redis_factory(appendonly=True)

    async def before():
        broker = await connect(engine.url, lease=0.2)
        consumer = await broker.consumer("coaching.entries", "coaches", "first")
        for n in range(5):
            await broker.publish("coaching.entries", f"entry-{n}".encode())
        batch = await consumer.receive(max_messages=5)
        await consumer.ack(batch[:2])
        await broker.client.execute_command("WAIT", 0, 0)  # let the AOF write go out
        await broker.close()
        return batch

    async def after():
        broker = await connect(engine.url, lease=0.2)
        survivor = await broker.consumer("coaching.entries", "coaches", "survivor")
        again = await survivor.receive(max_messages=10, timeout=5)
        await survivor.ack(again)
        extra = await survivor.receive(timeout=0.5)
        await broker.close()
        return again, extra

    batch = run(before())
    engine.kill() if crash else engine.stop()
    engine.start()
    again, extra = run(after())
    assert [m.body for m in again] == [m.body for m in batch[2:]]
    assert all(m.deliveries == 2 for m in again) and extra == []


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "SIGKILL"])
def test_with_default_persistence_a_killed_redis_loses_what_came_after_its_last_snapshot(
        redis_factory, crash):
    """Redis's defaults keep no append-only file, only RDB snapshots (after 3600 s and
    one write, 300 s and 100, 60 s and 10,000). A graceful shutdown writes a snapshot,
    so everything comes back; a SIGKILL a few seconds after the writes loses them all,
    acknowledged or not: the stream and its consumer group are gone."""
    engine = redis_factory(defaults=True)

    async def before():
        broker = await connect(engine.url, lease=0.2)
        save = await broker.client.config_get("save")
        appendonly = await broker.client.config_get("appendonly")
        consumer = await broker.consumer("coaching.entries", "coaches", "first")
        for n in range(5):
            await broker.publish("coaching.entries", f"entry-{n}".encode())
        batch = await consumer.receive(max_messages=5)
        await consumer.ack(batch[:2])
        await broker.close()
        return save, appendonly, batch

    async def after():
        broker = await connect(engine.url, lease=0.2)
        exists = await broker.client.exists("coaching.entries")
        length = await broker.client.xlen("coaching.entries")
        pending = await broker.client.xpending("coaching.entries", "coaches") if exists else None
        await broker.close()
        return exists, length, pending

    save, appendonly, batch = run(before())
    engine.kill() if crash else engine.stop()
    engine.start()
    exists, length, pending = run(after())
    assert save == {"save": "3600 1 300 100 60 10000"} and appendonly == {"appendonly": "no"}
    assert len(batch) == 5
    if crash:
        assert (exists, length) == (0, 0)  # five writes, two acks: all gone
    else:
        assert (exists, length) == (1, 5)
        assert pending["pending"] == 3  # the two acks were kept too


def test_a_key_that_is_not_a_stream_is_refused_and_left_as_it_was(redis_server):
    from redis.exceptions import ResponseError

    async def scenario():
        broker = await connect(redis_server.url)
        await broker.client.set("coaching.notes", "a plain string")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.subscribe("coaching.notes", "coaches")
        value = await broker.client.get("coaching.notes")
        await broker.client.delete("coaching.notes")
        await broker.close()
        return value

    assert run(scenario()) == b"a plain string"


def test_a_redis_that_goes_away_mid_batch_raises_and_loses_nothing_acknowledged(redis_factory):
    from redis.exceptions import ConnectionError as RedisConnectionError

    engine = redis_factory(appendonly=True)

    async def scenario():
        broker = await connect(engine.url, lease=0.2)
        consumer = await broker.consumer("coaching.entries", "coaches", "first")
        for n in range(5):
            await broker.publish("coaching.entries", f"entry-{n}".encode())
        batch = await consumer.receive(max_messages=5)
        await consumer.ack(batch[:2])
        engine.stop()  # the server goes away with three entries in hand
        with pytest.raises(RedisConnectionError):
            await consumer.ack(batch[2:])
        engine.start()
        await broker.close()
        broker = await connect(engine.url, lease=0.2)
        survivor = await broker.consumer("coaching.entries", "coaches", "survivor")
        again = await survivor.receive(max_messages=10, timeout=5)
        await survivor.ack(again)
        extra = await survivor.receive(timeout=0.5)
        await broker.close()
        return batch, again, extra

    batch, again, extra = run(scenario())
    assert [m.body for m in again] == [m.body for m in batch[2:]] and extra == []
