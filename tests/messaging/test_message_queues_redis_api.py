"""The Redis Streams queue's own promises, beyond the shared contract: its defaults (a
30 s lease, batches of 10, a 1 s wait), the body limit's boundary, the delivery counts of
claimed entries, how a waiting consumer waits (in Redis, in slices of a quarter lease),
and how ``connect`` retries: how many attempts, how long between them, where it looks.

An entry's idle time is set with ``XCLAIM ... IDLE``, so that "the lease has run out" is
a fact stored in Redis, not something a test waits for."""

from __future__ import annotations

import asyncio
import socket

import pytest

from snippets.messaging import message_queues_redis as mq
from snippets.messaging.message_queues_redis import connect
from tests.messaging.conftest import run
from tests.messaging.support import FakeServer, silent_connect

GROUP = "coaches"


async def fresh(url: str, topic: str, **options: float) -> mq.RedisBroker:
    broker = await connect(url, **options)
    await broker.client.delete(topic)
    return broker


async def make_idle(broker: mq.RedisBroker, topic: str, owner: str, ids: list[str],
                    idle_ms: int, delivered: int) -> None:
    """Pretend ``owner`` got ``ids`` ``delivered`` times, the last ``idle_ms`` ago."""
    await broker.client.xclaim(topic, GROUP, owner, 0, ids, idle=idle_ms, retrycount=delivered)


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(redis_server):
    topic = "limit.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic, max_body=16)  # the option reaches it
        consumer = await broker.consumer(topic, GROUP, "reader")
        await broker.publish(topic, b"x" * 16)
        await broker.publish_many(topic, [b"w" * 16])
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish(topic, b"y" * 17)
        with pytest.raises(ValueError, match="message of 17 bytes exceeds the 16-byte limit"):
            await broker.publish_many(topic, [b"z", b"y" * 17])
        got = await consumer.receive(timeout=0)
        await consumer.ack(got)
        await broker.client.delete(topic)
        await broker.close()
        return [(m.body, m.deliveries) for m in got]

    assert run(scenario()) == [(b"x" * 16, 1), (b"w" * 16, 1)]  # a first delivery counts 1


def test_by_default_a_receive_takes_at_most_10_and_waits_1_second(redis_server):
    topic = "defaults.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(12)])
        got = await consumer.receive()
        rest = await consumer.receive()
        await consumer.ack(got + rest)
        loop = asyncio.get_running_loop()
        start = loop.time()
        empty = await consumer.receive()
        waited = loop.time() - start
        await broker.client.delete(topic)
        await broker.close()
        return got, rest, empty, waited

    got, rest, empty, waited = run(scenario())
    assert [(m.body, m.deliveries) for m in got] == [(f"entry-{n}".encode(), 1) for n in range(10)]
    assert [m.body for m in rest] == [b"entry-10", b"entry-11"]
    assert empty == [] and 1.0 <= waited < 2.0, waited


def test_an_empty_receive_may_wait_longer_than_5_seconds_with_the_default_lease(redis_server):
    """With the default 30 s lease a receive blocks in slices of 7.5 s: the connection
    must not give up reading after redis-py's default socket timeout (5 s)."""
    topic = "wait.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await consumer.receive(timeout=5.5)
        waited = loop.time() - start
        await broker.client.delete(topic)
        await broker.close()
        return got, waited

    got, waited = run(scenario())
    assert got == [] and waited >= 5.5


@pytest.mark.parametrize("lease", [None, 600.0], ids=["default", "600s"])
def test_an_entry_is_claimed_when_idle_for_exactly_its_lease_and_not_before(redis_server, lease):
    topic = "lease.entries"

    async def scenario():
        options = {} if lease is None else {"lease": lease}
        broker = await fresh(redis_server.url, topic, **options)
        lease_ms = int((lease or 30.0) * 1000)  # the default lease is 30 s
        first = await broker.consumer(topic, GROUP, "first")
        second = await broker.consumer(topic, GROUP, "second")
        entry = await broker.publish(topic, b"entry-1")
        held = await first.receive(timeout=0)
        await make_idle(broker, topic, "first", [entry], lease_ms - 5000, delivered=1)
        early = await second.receive(timeout=0)
        await make_idle(broker, topic, "first", [entry], lease_ms, delivered=1)
        claimed = await second.receive(timeout=0)
        await second.ack(claimed)
        await broker.client.delete(topic)
        await broker.close()
        return held, early, claimed

    held, early, claimed = run(scenario())
    assert [m.body for m in held] == [b"entry-1"] and early == []
    assert [(m.body, m.deliveries) for m in claimed] == [(b"entry-1", 2)]


def test_a_receive_claims_at_most_max_messages_with_each_ones_own_delivery_count(
        redis_server):
    topic = "claim.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic, lease=600.0)
        dead = await broker.consumer(topic, GROUP, "dead")
        survivor = await broker.consumer(topic, GROUP, "survivor")
        ids = await broker.publish_many(topic, [b"entry-1", b"entry-2", b"entry-3"])
        await dead.receive(timeout=0)
        for entry, delivered in zip(ids, (1, 4, 2), strict=True):
            await make_idle(broker, topic, "dead", [entry], 600_000, delivered)
        batch = await survivor.receive(max_messages=2, timeout=0)
        rest = await survivor.receive(max_messages=2, timeout=0)
        await survivor.ack(batch + rest)
        await broker.client.delete(topic)
        await broker.close()
        return batch, rest

    batch, rest = run(scenario())
    assert [(m.body, m.deliveries) for m in batch] == [(b"entry-1", 2), (b"entry-2", 5)]
    assert [(m.body, m.deliveries) for m in rest] == [(b"entry-3", 3)]


def test_claimed_entries_report_their_counts_when_the_claimer_holds_an_entry_between_them(
        redis_server):
    """The claimer already holds entry-2 (claimed a moment ago, not idle). Taking over
    entry-1 and entry-3 from a dead consumer must still report how often each of those
    two was delivered: entry-2 sits between them in the group's pending list."""
    topic = "between.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic, lease=600.0)
        dead = await broker.consumer(topic, GROUP, "dead")
        claimer = await broker.consumer(topic, GROUP, "claimer")
        ids = await broker.publish_many(topic, [b"entry-1", b"entry-2", b"entry-3"])
        await dead.receive(timeout=0)
        await make_idle(broker, topic, "dead", [ids[0]], 600_000, delivered=3)
        await make_idle(broker, topic, "claimer", [ids[1]], 0, delivered=1)
        await make_idle(broker, topic, "dead", [ids[2]], 600_000, delivered=5)
        claimed = await claimer.receive(timeout=0)
        await claimer.ack(claimed)
        await broker.client.delete(topic)
        await broker.close()
        return claimed

    claimed = run(scenario())
    assert [(m.body, m.deliveries) for m in claimed] == [(b"entry-1", 4), (b"entry-3", 6)]


def test_a_waiting_consumer_takes_over_an_abandoned_entry_within_a_quarter_lease(redis_server):
    """With a 2 s lease, a consumer already waiting in a 30 s receive checks for abandoned
    entries every 0.5 s: it gets the dead consumer's entry soon after the lease runs out,
    not at the end of a longer block."""
    topic = "waiting.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic, lease=2.0)
        dead = await broker.consumer(topic, GROUP, "dead")
        waiter = await broker.consumer(topic, GROUP, "waiter")
        await broker.publish(topic, b"entry-1")
        held = await dead.receive(timeout=0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await waiter.receive(timeout=30.0)
        waited = loop.time() - start
        await waiter.ack(got)
        await broker.client.delete(topic)
        await broker.close()
        return held, got, waited

    held, got, waited = run(scenario())
    assert [m.body for m in held] == [b"entry-1"]
    assert [(m.body, m.deliveries) for m in got] == [(b"entry-1", 2)]
    assert waited < 6.0, waited  # 2 s lease + at most a 0.5 s slice; a longer block is 8 s


def test_a_waiting_consumer_blocks_in_redis_instead_of_polling_it(redis_server):
    """One second of waiting on an empty stream is one blocking XREADGROUP (two at most,
    when the first returns just before the deadline), not a busy loop of reads."""
    topic = "blocking.entries"

    async def calls(broker: mq.RedisBroker) -> int:
        stats = await broker.client.info("commandstats")
        return stats.get("cmdstat_xreadgroup", {}).get("calls", 0)

    async def scenario():
        broker = await fresh(redis_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        before = await calls(broker)
        got = await consumer.receive(timeout=1.0)
        after = await calls(broker)
        await broker.client.delete(topic)
        await broker.close()
        return got, after - before

    got, reads = run(scenario())
    assert got == [] and 1 <= reads <= 3, reads


def test_without_a_url_connect_tries_the_local_default_three_times_and_names_it(monkeypatch):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("something listens on 127.0.0.1:6379: the default would reach it")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConnectionError,
                       match="cannot reach Redis at redis://127.0.0.1:6379/0 after 3 attempts: "):
        run(connect(), timeout=30)


URL = "redis://127.0.0.1:{port}/0"


def test_connect_makes_exactly_its_attempts_and_backs_off_exponentially_between_them(
        monkeypatch):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: object) -> object:
        slept.append(delay)
        return await real_sleep(0, *args)

    async def scenario():
        closing = FakeServer(answer=True, url=URL)
        async with closing as url:
            monkeypatch.setattr(mq.asyncio, "sleep", sleep)
            try:
                with pytest.raises(ConnectionError,
                                   match=r"cannot reach Redis at .* after 4 attempts: "):
                    await connect(url, attempts=4)
            finally:
                monkeypatch.undo()
        return closing.connections

    connections = run(scenario())
    assert connections == 4
    assert slept == pytest.approx([0.2, 0.4, 0.8])  # 0.1 s doubled, none after the last


def test_a_server_that_never_answers_fails_the_connect_after_2_seconds_instead_of_hanging():
    connections, waited = run(silent_connect(connect, URL, "after 1 attempts"), timeout=30)
    assert connections == 1 and 2.0 <= waited < 3.0, waited


def test_connect_refuses_fewer_than_one_attempt_by_name(redis_server):
    with pytest.raises(ValueError, match="attempts must be at least 1, not 0"):
        run(connect(redis_server.url, attempts=0))


def test_a_receive_with_a_zero_timeout_returns_the_new_entries_already_there(redis_server):
    topic = "poll.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic)
        consumer = await broker.consumer(topic, GROUP, "reader")
        empty = await consumer.receive(timeout=0)
        await broker.publish_many(topic, [b"entry-1", b"entry-2"])
        got = await consumer.receive(timeout=0)
        await consumer.ack(got)
        await broker.client.delete(topic)
        await broker.close()
        return empty, got

    empty, got = run(scenario())
    assert empty == [] and [m.body for m in got] == [b"entry-1", b"entry-2"]


def test_an_empty_receive_waits_its_whole_timeout_across_several_slices(redis_server):
    """With a 2 s lease a receive blocks in 0.5 s slices: a 1.5 s receive takes three of
    them and returns nothing only when its whole timeout has passed."""
    topic = "slices.entries"

    async def scenario():
        broker = await fresh(redis_server.url, topic, lease=2.0)
        consumer = await broker.consumer(topic, GROUP, "reader")
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await consumer.receive(timeout=1.5)
        waited = loop.time() - start
        await broker.client.delete(topic)
        await broker.close()
        return got, waited

    got, waited = run(scenario())
    assert got == [] and waited >= 1.5, waited
