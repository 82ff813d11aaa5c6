"""Tests of key-sharded workers: order per key, concurrency across shards, retries, parking."""

from __future__ import annotations

import asyncio
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_handlers_ordering import (
    Message,
    ShardedConsumer,
    TransientError,
    main,
)

KEYS = ["ana", "ben", "caro", "dev", "eli", "fay"]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


# A random workload: messages for a few keys, each failing a chosen number of times.
workloads = st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 4)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(workloads, st.integers(1, 4), st.integers(1, 4))
def test_each_key_is_applied_in_arrival_order_and_a_dead_letter_parks_only_its_key(
        workload, shards, max_attempts):
    async def scenario():
        failures_left: dict[tuple[str, int], int] = {}
        applied: dict[str, list[int]] = {}

        async def handler(message: Message) -> None:
            left = failures_left[(message.key, message.seq)]
            if left:
                failures_left[(message.key, message.seq)] = left - 1
                raise TransientError("not yet")
            await asyncio.sleep(0)
            applied.setdefault(message.key, []).append(message.seq)

        consumer = ShardedConsumer(handler, shards=shards, max_attempts=max_attempts,
                                   sleep=no_wait)
        sent: dict[str, list[tuple[int, int]]] = {}
        for seq, (key, failures) in enumerate(workload):
            failures_left[(key, seq)] = failures
            sent.setdefault(key, []).append((seq, failures))
            await consumer.submit(Message(key, seq))
        await consumer.join()
        await consumer.close()
        return consumer, applied, sent

    consumer, applied, sent = run(scenario())
    for key, messages in sent.items():
        seqs = [seq for seq, _ in messages]
        doomed = [i for i, (_, failures) in enumerate(messages) if failures >= max_attempts]
        if not doomed:
            assert applied.get(key, []) == seqs and key not in consumer.dead_letters
            continue
        first = doomed[0]
        assert applied.get(key, []) == seqs[:first]  # nothing after the dead letter was applied
        assert consumer.dead_letters[key].seq == seqs[first]
        assert [m.seq for m in consumer.parked.get(key, [])] == seqs[first + 1:]


def test_a_transient_failure_is_retried_in_place_with_growing_delays_and_keeps_order():
    async def scenario():
        delays, applied, fails = [], [], {1: 2}

        async def sleep(seconds: float) -> None:
            delays.append(seconds)

        async def handler(message: Message) -> None:
            if fails.get(message.seq, 0):
                fails[message.seq] -= 1
                raise TransientError("timeout")
            applied.append(message.seq)

        consumer = ShardedConsumer(handler, shards=1, max_attempts=3, sleep=sleep)
        for seq in range(4):
            await consumer.submit(Message("ana", seq))
        await consumer.close()
        return delays, applied

    assert run(scenario()) == ([0.1, 0.2], [0, 1, 2, 3])


def test_requeueing_a_failure_lets_a_later_message_of_the_same_key_overtake_it():
    async def scenario():
        applied, failed = [], set()

        async def handler(message: Message) -> None:
            if message.seq == 1 and 1 not in failed:
                failed.add(1)
                raise TransientError("timeout")
            applied.append(message.seq)

        consumer = ShardedConsumer(handler, shards=1, retry_in_place=False, sleep=no_wait)
        for seq in range(3):
            await consumer.submit(Message("ana", seq))
        await consumer.close()
        return applied

    assert run(scenario()) == [0, 2, 1]


def keys_on_different_shards(shards: int) -> tuple[str, str]:
    first = KEYS[0]
    other = next(k for k in KEYS if zlib.crc32(k.encode()) % shards != zlib.crc32(
        first.encode()) % shards)
    return first, other


def test_keys_on_different_shards_are_handled_concurrently():
    async def scenario():
        barrier = asyncio.Barrier(2)
        consumer = ShardedConsumer(lambda m: barrier.wait(), shards=4)
        for key in keys_on_different_shards(4):
            await consumer.submit(Message(key, 0))  # each waits for the other: deadlock if serial
        await consumer.close()
        return barrier.n_waiting

    assert run(scenario()) == 0


def test_one_key_is_never_handled_twice_at_the_same_time():
    async def scenario():
        running: dict[str, int] = {}
        peak: dict[str, int] = {}

        async def handler(message: Message) -> None:
            running[message.key] = running.get(message.key, 0) + 1
            peak[message.key] = max(peak.get(message.key, 0), running[message.key])
            for _ in range(3):
                await asyncio.sleep(0)
            running[message.key] -= 1

        consumer = ShardedConsumer(handler, shards=3)
        for seq in range(30):
            await consumer.submit(Message(KEYS[seq % 4], seq))
        await consumer.close()
        return peak

    assert set(run(scenario()).values()) == {1}


def test_redrive_replays_the_dead_letter_then_the_parked_messages_in_order():
    async def scenario():
        applied, broken = [], {1}

        async def handler(message: Message) -> None:
            if message.seq in broken:
                raise TransientError("goal service rejects it")
            applied.append(message.seq)

        consumer = ShardedConsumer(handler, shards=2, max_attempts=2, sleep=no_wait)
        for seq in range(4):
            await consumer.submit(Message("ben", seq))
        await consumer.join()
        before = (list(applied), consumer.dead_letters["ben"].attempts)
        broken.clear()
        await consumer.redrive("ben")
        await consumer.redrive("nobody")  # nothing to redrive: harmless
        await consumer.close()
        return before, applied, consumer

    (before, attempts), applied, consumer = run(scenario())
    assert before == [0] and attempts == 2
    assert applied == [0, 1, 2, 3]
    assert consumer.dead_letters == {} and consumer.parked == {}


def test_the_shard_of_a_key_is_stable_and_in_range():
    async def scenario():
        consumer = ShardedConsumer(lambda m: asyncio.sleep(0), shards=5)
        shards = {key: consumer.shard_of(key) for key in KEYS}
        assert all(consumer.shard_of(key) == shard for key, shard in shards.items())
        assert all(0 <= shard < 5 for shard in shards.values())
        assert consumer.shard_of("ana") == zlib.crc32(b"ana") % 5  # not hash(): no per-run salt
        await consumer.close()

    run(scenario())


@pytest.mark.parametrize("bad", [dict(shards=0), dict(max_attempts=0)])
def test_impossible_settings_are_refused(bad):
    async def scenario():
        with pytest.raises(ValueError, match="need shards >= 1 and max_attempts >= 1"):
            ShardedConsumer(lambda m: asyncio.sleep(0), **bad)

    run(scenario())


def test_the_demo_keeps_order_in_place_parks_ben_and_shows_the_requeue_mistake(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out
    assert "dead letters ['ben'], parked {'ben': [3]}" in out
    assert "after redrive: ben applied [1, 2, 3]" in out
    assert "applied [1, 3, 2]  <- 3 overtook 2" in out
