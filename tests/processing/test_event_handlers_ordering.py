"""Tests of key-sharded workers: order per key, concurrency across shards, retries, parking."""

from __future__ import annotations

import asyncio
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_handlers_ordering import (
    DeadLetter,
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
        assert consumer.dead_letters[key].message.seq == seqs[first]
        assert consumer.dead_letters[key].message.attempts == max_attempts
        assert consumer.dead_letters[key].error == "TransientError: not yet"
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
        before = (list(applied), consumer.dead_letters["ben"].message.attempts)
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
        default = ShardedConsumer(lambda m: asyncio.sleep(0))
        assert [default.shard_of(key) for key in KEYS] == [zlib.crc32(k.encode()) % 4 for k in KEYS]
        await default.close()

    run(scenario())


@pytest.mark.parametrize(("bad", "numbers"), [({"shards": 0}, "0 and 3"),
                                              ({"max_attempts": 0}, "4 and 0")])
def test_impossible_settings_are_refused(bad, numbers):
    async def scenario():
        with pytest.raises(ValueError) as refused:
            ShardedConsumer(lambda m: asyncio.sleep(0), **bad)
        return str(refused.value)

    assert run(scenario()) == f"need shards >= 1 and max_attempts >= 1, not {numbers}"


def test_the_demo_keeps_order_in_place_parks_ben_and_caro_and_shows_the_requeue_mistake(capsys):
    asyncio.run(main())
    assert capsys.readouterr().out.splitlines() == [
        "retry in place:",
        "  ana  (shard 0) applied [1, 2, 3]",
        "  ben  (shard 2) applied [1]",
        "  caro (shard 0) applied [1]",
        "  dead letter: ben  entry 2, attempts 3, TransientError: goal service rejects this entry for now",
        "  dead letter: caro entry 2, attempts 1, ValueError: no mood 'meh' on the scale",
        "  parked {'ben': [3], 'caro': [3]}",
        "  after redrive: ben applied [1, 2, 3, 4]",
        "retry by requeue:",
        "  ana  (shard 0) applied [1, 3, 2]  <- 3 overtook 2",
        "  ben  (shard 2) applied [1, 2, 3]",
        "  caro (shard 0) applied [1, 2, 3]",
    ]


# --- Defect 4 of issue 20: unexpected errors and redrive order -------------------------------

def test_an_unexpected_error_dead_letters_its_message_at_once_and_the_shard_goes_on():
    async def scenario():
        applied, calls, delays = [], [], []

        async def sleep(seconds: float) -> None:
            delays.append(seconds)

        async def handler(message: Message) -> None:
            calls.append((message.key, message.seq))
            if (message.key, message.seq) == ("caro", 2):
                raise ValueError("unknown mood 'meh'")
            applied.append((message.key, message.seq))

        consumer = ShardedConsumer(handler, shards=1, max_attempts=3, sleep=sleep)
        for key, seq in [("ana", 1), ("caro", 1), ("caro", 2), ("ana", 2), ("caro", 3), ("ana", 3)]:
            await consumer.submit(Message(key, seq))
        await consumer.join()
        await consumer.close()
        return consumer, applied, calls, delays

    consumer, applied, calls, delays = run(scenario())
    assert applied == [("ana", 1), ("caro", 1), ("ana", 2), ("ana", 3)]
    assert calls.count(("caro", 2)) == 1 and delays == []  # no retry for a permanent failure
    dead = consumer.dead_letters["caro"]
    assert (dead.message, dead.message.attempts) == (Message("caro", 2), 1)
    assert dead.error == "ValueError: unknown mood 'meh'"
    assert list(consumer.dead_letters) == ["caro"]
    assert consumer.parked == {"caro": [Message("caro", 3)]}


def test_redrive_applies_the_dead_letter_before_messages_of_its_key_queued_while_it_runs():
    async def scenario():
        applied, broken = [], {("ben", 2)}
        ana_started, ana_may_finish = asyncio.Event(), asyncio.Event()

        async def handler(message: Message) -> None:
            if (message.key, message.seq) in broken:
                raise TransientError("goal service rejects it")
            if message.key == "ana":
                ana_started.set()
                await ana_may_finish.wait()  # the shard is busy while ben's messages queue up
            applied.append((message.key, message.seq))

        consumer = ShardedConsumer(handler, shards=1, max_attempts=1, sleep=no_wait)
        for seq in (1, 2, 3):
            await consumer.submit(Message("ben", seq))
        await consumer.join()
        broken.clear()
        await consumer.submit(Message("ana", 1))
        await ana_started.wait()
        await consumer.submit(Message("ben", 4))  # queued before the redrive
        await consumer.redrive("ben")
        await consumer.submit(Message("ben", 5))  # queued after it
        ana_may_finish.set()
        await consumer.close()
        return consumer, applied

    consumer, applied = run(scenario())
    assert [seq for key, seq in applied if key == "ben"] == [1, 2, 3, 4, 5]
    assert applied.index(("ana", 1)) == 1
    assert consumer.dead_letters == {} and consumer.parked == {}


# A random history: submits, redrives, fixes and pauses of a few loop turns, in any order.
ops = st.lists(st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(KEYS[:2]),
              st.sampled_from(["ok", "flaky", "transient", "permanent"])),
    st.tuples(st.just("redrive"), st.sampled_from(KEYS[:2]), st.just(0)),
    st.tuples(st.just("fix"), st.sampled_from(KEYS[:2]), st.just(0)),
    st.tuples(st.just("pause"), st.just(""), st.integers(1, 4)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 3), st.integers(1, 2))
def test_whatever_fails_and_whenever_redrive_runs_each_key_is_applied_once_in_order(
        history, shards, max_attempts):
    async def scenario():
        applied: dict[str, list[int]] = {}
        sent: dict[str, list[int]] = {}
        broken: dict[tuple[str, int], str] = {}

        async def handler(message: Message) -> None:
            kind = broken.get((message.key, message.seq))
            if kind == "flaky" and message.attempts == 1:
                raise TransientError("timeout")
            if kind == "transient":
                raise TransientError("still down")
            if kind == "permanent":
                raise KeyError("mood")
            await asyncio.sleep(0)
            applied.setdefault(message.key, []).append(message.seq)

        consumer = ShardedConsumer(handler, shards=shards, max_attempts=max_attempts,
                                   sleep=no_wait)
        for op, key, arg in history:
            if op == "submit":
                seq = len(sent.setdefault(key, []))
                sent[key].append(seq)
                broken[(key, seq)] = arg  # how this message fails until fixed
                await consumer.submit(Message(key, seq))
            elif op == "redrive":
                await consumer.redrive(key)
            elif op == "fix":
                for message_key, seq in broken:
                    if message_key == key:
                        broken[(message_key, seq)] = "ok"
            else:
                for _ in range(arg):  # let the workers run a few turns
                    await asyncio.sleep(0)
        await consumer.join()
        broken.clear()
        for key in sent:
            await consumer.redrive(key)
        await consumer.close()
        return consumer, applied, sent

    consumer, applied, sent = run(scenario())
    assert applied == sent
    assert consumer.dead_letters == {} and consumer.parked == {}


class Fatal(BaseException):
    """Not an Exception: the kind of thing that does end a worker."""


@pytest.mark.parametrize("last", [2, 1], ids=["with-messages-queued", "on-the-last-message"])
def test_join_raises_instead_of_hanging_or_hiding_a_worker_that_died(last):
    async def scenario():
        async def handler(message: Message) -> None:
            if message.seq == 1:
                raise Fatal("out of memory")

        consumer = ShardedConsumer(handler, shards=2)
        for seq in range(last + 1):
            await consumer.submit(Message("ana", seq))
        with pytest.raises(RuntimeError) as raised:
            await consumer.join()
        with pytest.raises(RuntimeError) as raised_again:
            await consumer.close()
        await consumer.close()  # closing again does nothing
        waiters = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Queue.join"]
        assert waiters == []  # join() left nothing waiting behind
        return consumer, str(raised.value), str(raised_again.value)

    consumer, message, again = run(scenario())
    shard = zlib.crc32(b"ana") % 2
    assert message == again == (f"shard {shard} worker stopped (Fatal: out of memory) "
                                f"with {last - 1} message(s) still queued")
    assert all(worker.done() for worker in consumer._workers)


def test_a_stray_cancellation_from_the_handler_stops_its_worker_and_join_says_so():
    async def scenario():
        async def handler(message: Message) -> None:
            raise asyncio.CancelledError  # e.g. it awaited a future someone else cancelled

        consumer = ShardedConsumer(handler, shards=1)
        await consumer.submit(Message("ana", 0))
        await consumer.submit(Message("ana", 1))
        with pytest.raises(RuntimeError) as raised:
            await consumer.join()
        await consumer.close()
        return str(raised.value)

    assert run(scenario()) == "shard 0 worker stopped (cancelled) with 1 message(s) still queued"


def test_join_after_close_says_the_workers_are_stopped():
    async def scenario():
        consumer = ShardedConsumer(lambda m: asyncio.sleep(0), shards=1)
        await consumer.close()
        with pytest.raises(RuntimeError, match=r"^shard 0 worker stopped \(cancelled\) "
                                               r"with 0 message\(s\) still queued$"):
            await consumer.join()

    run(scenario())


def test_a_redrive_that_fails_again_dead_letters_the_message_and_parks_the_rest_in_order():
    async def scenario():
        applied, calls = [], []

        async def handler(message: Message) -> None:
            calls.append((message.seq, message.attempts))
            if message.seq == 1:
                raise TransientError("still down")
            applied.append(message.seq)

        consumer = ShardedConsumer(handler, shards=1, max_attempts=2, sleep=no_wait)
        for seq in range(4):
            await consumer.submit(Message("ben", seq))
        await consumer.redrive("ben")  # the cause is not fixed: the replay fails the same way
        await consumer.close()
        return consumer, applied, calls

    consumer, applied, calls = run(scenario())
    assert applied == [0]
    assert calls == [(0, 1), (1, 1), (1, 2), (1, 1), (1, 2)]  # attempts start again at 1
    assert consumer.dead_letters["ben"] == DeadLetter(Message("ben", 1), "TransientError: still down")
    assert consumer.dead_letters["ben"].message.attempts == 2
    assert consumer.parked == {"ben": [Message("ben", 2), Message("ben", 3)]}


def test_during_a_backoff_the_whole_shard_waits():
    async def scenario():
        applied, seen_during_backoff, failed = [], [], set()

        async def sleep(seconds: float) -> None:
            seen_during_backoff.append(list(applied))

        async def handler(message: Message) -> None:
            if message.key == "ana" and "ana" not in failed:
                failed.add("ana")
                raise TransientError("timeout")
            applied.append(message.key)

        consumer = ShardedConsumer(handler, shards=1, sleep=sleep)
        await consumer.submit(Message("ana", 1))
        await consumer.submit(Message("caro", 1))
        await consumer.close()
        return applied, seen_during_backoff

    assert run(scenario()) == (["ana", "caro"], [[]])
