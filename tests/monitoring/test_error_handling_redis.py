"""Tests of the Redis Streams dead-letter stream on a real Redis."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from snippets.monitoring.error_handling_redis import (
    PermanentError,
    StreamConsumer,
    main,
)
from tests.engines import free_port

_names = itertools.count(1)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def setup(url: str, **options):
    client = redis.from_url(url, decode_responses=True)
    stream = f"test.mon.entries.{next(_names)}"
    consumer = StreamConsumer(client, stream, "mood-agent", "w1", **options)
    await consumer.ensure_group()
    return client, consumer


async def dead_entries(client, consumer):
    return [fields for _, fields in await client.xrange(consumer.dead)]


def test_an_entry_that_keeps_failing_is_dead_lettered_with_its_last_error(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url, max_deliveries=3, lease_ms=0)
        await client.xadd(consumer.stream, {"message_id": "m-2", "traceparent": "00-abc-01",
                                            "body": "{}"})
        calls = []

        async def flaky(fields):
            calls.append(fields["message_id"])
            raise TimeoutError("model endpoint did not answer")

        rounds = [await consumer.poll(flaky) for _ in range(5)]
        dead = await dead_entries(client, consumer)
        pending = await client.xpending(consumer.stream, consumer.group)
        errors = await client.hlen(consumer.errors)
        await client.aclose()
        return rounds, calls, dead, pending["pending"], errors

    rounds, calls, dead, pending, errors = run(scenario())
    assert rounds == [["retry"], ["retry"], ["retry"], ["dead"], []]
    assert calls == ["m-2"] * 3
    [entry] = dead
    assert {k: entry[k] for k in ("message_id", "traceparent", "body")} == {
        "message_id": "m-2", "traceparent": "00-abc-01", "body": "{}"}
    assert entry["x-dead-reason"] == "max_deliveries"
    assert entry["x-dead-error"] == "TimeoutError: model endpoint did not answer"
    assert (entry["x-dead-attempts"], entry["x-dead-count"], entry["x-dead-group"]) == (
        "3", "1", "mood-agent")
    assert (pending, errors) == (0, 0)  # never both pending and dead; no stale error kept


def test_a_poison_entry_is_dead_lettered_on_its_first_delivery(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url, lease_ms=0)
        entry_id = await client.xadd(consumer.stream, {"body": "not json"})

        async def strict(fields):
            raise PermanentError("body is not JSON")

        outcome = await consumer.poll(strict)
        dead = await dead_entries(client, consumer)
        await client.aclose()
        return entry_id, outcome, dead

    entry_id, outcome, [entry] = run(scenario())
    assert outcome == ["dead"]
    assert (entry["x-dead-reason"], entry["x-dead-attempts"]) == ("poison", "1")
    assert entry["x-dead-source"].endswith(f" {entry_id}")


def test_an_entry_abandoned_by_a_crashed_consumer_is_claimed_and_handled_by_another(redis_server):
    async def scenario():
        client, crashed = await setup(redis_server.url, lease_ms=0)
        await client.xadd(crashed.stream, {"message_id": "m-1"})
        await client.xreadgroup(crashed.group, "w1", {crashed.stream: ">"})  # then it dies
        survivor = StreamConsumer(client, crashed.stream, crashed.group, "w2", lease_ms=0)
        seen = []

        async def ok(fields):
            seen.append(fields["message_id"])

        outcome = await survivor.poll(ok)
        pending = await client.xpending(crashed.stream, crashed.group)
        await client.aclose()
        return outcome, seen, pending["pending"]

    assert run(scenario()) == (["handled"], ["m-1"], 0)


def test_an_entry_that_crashes_every_consumer_is_buried_with_an_unknown_error(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url, max_deliveries=2, lease_ms=0)
        await client.xadd(consumer.stream, {"message_id": "m-9"})
        await client.xreadgroup(consumer.group, "w1", {consumer.stream: ">"})  # crash 1
        await client.xautoclaim(consumer.stream, consumer.group, "w2", 0, "0-0")  # crash 2

        async def never_called(fields):
            raise AssertionError("the handler must not run a crash-looping entry again")

        outcome = await consumer.poll(never_called)
        [entry] = await dead_entries(client, consumer)
        await client.aclose()
        return outcome, entry

    outcome, entry = run(scenario())
    assert outcome == ["dead"]
    assert (entry["x-dead-reason"], entry["x-dead-error"], entry["x-dead-attempts"]) == (
        "max_deliveries", "unknown", "2")


def test_a_retry_that_succeeds_acknowledges_the_entry_and_forgets_its_error(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url, lease_ms=0)
        await client.xadd(consumer.stream, {"message_id": "m-1"})
        calls = []

        async def once_flaky(fields):
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("503")

        rounds = [await consumer.poll(once_flaky) for _ in range(3)]
        state = (await client.hlen(consumer.errors),
                 (await client.xpending(consumer.stream, consumer.group))["pending"],
                 await client.xlen(consumer.dead))
        await client.aclose()
        return rounds, state

    assert run(scenario()) == ([["retry"], ["handled"], []], (0, 0, 0))


def test_a_redriven_entry_that_dies_again_counts_its_deaths(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url, lease_ms=0)

        async def strict(fields):
            raise PermanentError("still broken")

        await client.xadd(consumer.stream, {"message_id": "m-1"})
        await consumer.poll(strict)
        [first] = await dead_entries(client, consumer)
        await client.xadd(consumer.stream, first)  # redrive: back onto the stream as it was
        await consumer.poll(strict)
        entries = await dead_entries(client, consumer)
        await client.aclose()
        return entries

    assert [e["x-dead-count"] for e in run(scenario())] == ["1", "2"]


def test_creating_the_group_twice_is_harmless_but_a_wrong_key_type_is_not(redis_server):
    async def scenario():
        client, consumer = await setup(redis_server.url)
        await consumer.ensure_group()
        await client.set("test.mon.not-a-stream", "x")
        wrong = StreamConsumer(client, "test.mon.not-a-stream", "g", "w")
        with pytest.raises(ResponseError, match="WRONGTYPE|requires the key to exist"):
            await wrong.ensure_group()
        await client.aclose()

    run(scenario())


def test_the_demo_buries_the_poison_entry_first_and_the_flaky_one_after_three_tries(
        redis_server, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == ["poll 1: ['handled', 'retry', 'dead']", "poll 2: ['retry']",
                         "poll 3: ['retry']", "poll 4: ['dead']", "poll 5: []"]
    assert "'x-dead-reason': 'poison'" in lines[5] and "'message_id': 'm-3'" in lines[5]
    assert "'x-dead-reason': 'max_deliveries'" in lines[6] and "'x-dead-attempts': '3'" in lines[6]
    assert lines[7] == "pending in the group: 0"


def test_without_redis_the_demo_says_where_it_looked(monkeypatch, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    run(main())
    assert f"No Redis at {url}" in capsys.readouterr().err


def test_an_entry_two_consumers_both_give_up_on_is_dead_lettered_once(redis_server):
    """w1 is still running the handler when its lease runs out; w2 claims the entry and
    buries it as poison; then w1's handler fails the same way. One dead letter, not two."""
    async def scenario():
        client, w1 = await setup(redis_server.url, lease_ms=0)
        w2 = StreamConsumer(client, w1.stream, w1.group, "w2", lease_ms=0)
        await client.xadd(w1.stream, {"message_id": "m-1"})
        w1_started, w2_done = asyncio.Event(), asyncio.Event()

        async def slow_then_poison(fields):
            w1_started.set()
            await w2_done.wait()
            raise PermanentError("body is not JSON")

        async def poison(fields):
            raise PermanentError("body is not JSON")

        first = asyncio.create_task(w1.poll(slow_then_poison))
        await w1_started.wait()
        second = await w2.poll(poison)
        w2_done.set()
        outcomes = (await first, second)
        dead = await dead_entries(client, w1)
        pending = await client.xpending(w1.stream, w1.group)
        await client.aclose()
        return outcomes, dead, pending["pending"]

    outcomes, dead, pending = run(scenario())
    assert [e["message_id"] for e in dead] == ["m-1"]
    assert outcomes == (["stolen"], ["dead"])
    assert pending == 0


def test_many_consumers_racing_for_failing_entries_bury_each_exactly_once(redis_server):
    """Four consumers, a lease of 0 (each steals what the others hold), 120 entries: a
    third handled, a third poison, a third failing until their deliveries run out. Every
    entry ends handled or dead exactly once, and no handler runs past max_deliveries."""
    kinds = ["ok", "poison", "flaky"]

    async def scenario():
        client, first = await setup(redis_server.url, max_deliveries=3, lease_ms=0)
        consumers = [first] + [StreamConsumer(client, first.stream, first.group, f"w{n}",
                                              max_deliveries=3, lease_ms=0) for n in (2, 3, 4)]
        for n in range(120):
            await client.xadd(first.stream, {"message_id": f"m-{n}", "kind": kinds[n % 3]})
        calls: dict[str, int] = {}
        handled: list[str] = []

        async def handler(fields):
            calls[fields["message_id"]] = calls.get(fields["message_id"], 0) + 1
            await asyncio.sleep(0)  # the others poll meanwhile
            if fields["kind"] == "poison":
                raise PermanentError("body is not JSON")
            if fields["kind"] == "flaky":
                raise TimeoutError("model endpoint did not answer")
            handled.append(fields["message_id"])

        async def settled() -> bool:  # nothing pending and nothing left to deliver
            [group] = await client.xinfo_groups(first.stream)
            last = (await client.xinfo_stream(first.stream))["last-generated-id"]
            return group["pending"] == 0 and group["last-delivered-id"] == last

        async def work(consumer):
            while not await settled():
                await consumer.poll(handler, count=5)

        await asyncio.gather(*[work(c) for c in consumers])
        dead = await dead_entries(client, first)
        stale = await client.hkeys(first.errors)
        await client.aclose()
        return calls, handled, dead, stale

    calls, handled, dead, stale = run(scenario())
    assert stale == []  # no error kept for an entry that is no longer pending
    dead_ids = [e["message_id"] for e in dead]
    assert len(dead_ids) == len(set(dead_ids)) == 80, "an entry was dead-lettered twice"
    assert sorted(set(handled)) == sorted(f"m-{n}" for n in range(0, 120, 3))
    assert {e["x-dead-reason"] for e in dead if e["kind"] == "flaky"} == {"max_deliveries"}
    assert max(calls.values()) <= 3


def test_an_entry_settled_by_another_consumer_between_claim_and_count_is_left_alone(
        redis_server):
    """Between XAUTOCLAIM and the XPENDING that reads its delivery count, another consumer
    acknowledges the entry: this one reports it ``stolen`` and neither runs nor buries it."""
    async def scenario():
        client, consumer = await setup(redis_server.url, lease_ms=0)
        await client.xadd(consumer.stream, {"message_id": "m-1"})
        [[_, [(entry_id, _)]]] = await client.xreadgroup(consumer.group, "w0",
                                                         {consumer.stream: ">"})
        count = client.xpending_range

        async def acked_meanwhile(*args, **kwargs):
            await client.xack(consumer.stream, consumer.group, entry_id)  # the other one
            return await count(*args, **kwargs)

        client.xpending_range = acked_meanwhile

        async def never_called(fields):
            raise AssertionError("a settled entry must not run again")

        outcome = await consumer.poll(never_called)
        dead = await dead_entries(client, consumer)
        await client.aclose()
        return outcome, dead

    assert run(scenario()) == (["stolen"], [])


def test_a_failure_reported_after_another_consumer_buried_the_entry_leaves_no_stale_error(
        redis_server):
    """w1's handler is still running when w2 claims the entry past its last delivery and
    buries it; then w1's handler fails. Its error must not be kept for an entry that is no
    longer pending: nothing would ever delete it."""
    async def scenario():
        client, w1 = await setup(redis_server.url, max_deliveries=1, lease_ms=0)
        w2 = StreamConsumer(client, w1.stream, w1.group, "w2", max_deliveries=1, lease_ms=0)
        await client.xadd(w1.stream, {"message_id": "m-1"})
        started, buried = asyncio.Event(), asyncio.Event()

        async def slow_then_timeout(fields):
            started.set()
            await buried.wait()
            raise TimeoutError("model endpoint did not answer")

        async def never_called(fields):
            raise AssertionError("past its last delivery: buried without running")

        first = asyncio.create_task(w1.poll(slow_then_timeout))
        await started.wait()
        second = await w2.poll(never_called)
        buried.set()
        outcomes = (await first, second)
        stale = await client.hkeys(w1.errors)
        dead = await dead_entries(client, w1)
        await client.aclose()
        return outcomes, stale, [e["message_id"] for e in dead]

    assert run(scenario()) == ((["stolen"], ["dead"]), [], ["m-1"])
