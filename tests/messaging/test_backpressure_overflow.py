"""Bounded queues: what each overflow policy keeps, loses, and makes the producer do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.backpressure_overflow import (
    BoundedQueue,
    Overloaded,
    Policy,
    main,
)
from tests.messaging.conftest import run

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_shows_what_each_policy_does_with_the_same_burst(capsys):
    run(main())
    assert capsys.readouterr().out == """\
block        got 1 2 3 4 5 6 7 8  dropped 0, refused 0, waited 5, spilled 0
drop-newest  got 1 2 3            dropped 5, refused 0, waited 0, spilled 0
drop-oldest  got 6 7 8            dropped 5, refused 0, waited 0, spilled 0
shed         got 1 2 3            dropped 0, refused 5, waited 0, spilled 0
spill        got 1 2 3 4 5 6 7 8  dropped 0, refused 0, waited 0, spilled 5
before restart: 3 in memory, 5 on disk
after restart: entry-1 entry-2 entry-3 entry-4 entry-5 entry-6 entry-7 entry-8
"""


async def full(policy: Policy, capacity: int = 2) -> BoundedQueue:
    queue = BoundedQueue(capacity, policy)
    for n in range(capacity):
        await queue.put(f"m{n}".encode())
    return queue


async def drain(queue: BoundedQueue) -> list[bytes]:
    return [await queue.get() for _ in range(len(queue))]


def test_a_blocked_producer_waits_until_the_consumer_makes_room():
    async def scenario() -> list[bytes]:
        queue = await full(Policy.BLOCK)
        put = asyncio.create_task(queue.put(b"m2"))
        for _ in range(5):
            await asyncio.sleep(0)  # give it every chance to get in
        assert not put.done() and len(queue) == 2
        assert await queue.get() == b"m0"
        assert await put is True
        return await drain(queue)

    assert run(scenario()) == [b"m1", b"m2"]


def test_a_producer_that_blocks_with_a_timeout_is_told_it_is_overloaded_and_stores_nothing():
    async def scenario() -> BoundedQueue:
        queue = await full(Policy.BLOCK)
        with pytest.raises(Overloaded, match="queue still full after waiting 0.01 s") as caught:
            await queue.put(b"late", timeout=0.01)
        assert caught.value.retry_after == 1.0
        return queue

    queue = run(scenario())
    assert (queue.shed, queue.waited, queue.accepted) == (1, 0, 2)
    assert run(drain(queue)) == [b"m0", b"m1"]


@pytest.mark.parametrize(("policy", "kept", "returned"), [
    (Policy.DROP_NEWEST, [b"m0", b"m1"], False),
    (Policy.DROP_OLDEST, [b"m1", b"new"], True),
])
def test_drop_policies_keep_the_oldest_or_the_newest_work(policy, kept, returned):
    async def scenario() -> tuple[bool, list[bytes], int]:
        queue = await full(policy)
        accepted = await queue.put(b"new")
        return accepted, await drain(queue), queue.dropped

    assert run(scenario()) == (returned, kept, 1)


def test_shed_refuses_at_once_with_a_retry_hint_and_keeps_what_was_queued():
    async def scenario() -> list[bytes]:
        queue = BoundedQueue(2, "shed", retry_after=2.5)
        await queue.put(b"m0")
        await queue.put(b"m1")
        with pytest.raises(Overloaded, match=r"queue full \(2 items\): retry in 2.5 s") as caught:
            await queue.put(b"m2")
        assert caught.value.retry_after == 2.5 and queue.shed == 1
        return await drain(queue)

    assert run(scenario()) == [b"m0", b"m1"]


class Model:
    """What each policy should hold, written the obvious way."""

    def __init__(self, policy: Policy, capacity: int) -> None:
        self.policy, self.capacity, self.items = policy, capacity, deque()

    def put(self, item: bytes) -> None:
        if len(self.items) < self.capacity or self.policy is Policy.SPILL:
            self.items.append(item)
        elif self.policy is Policy.DROP_OLDEST:
            self.items.popleft()
            self.items.append(item)

    def get(self) -> bytes:
        return self.items.popleft()


operations = st.lists(st.one_of(st.just("get"), st.just("put")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([Policy.DROP_NEWEST, Policy.DROP_OLDEST, Policy.SHED, Policy.SPILL]),
       st.integers(1, 4), operations)
def test_every_policy_keeps_fifo_order_and_memory_within_capacity(policy, capacity, ops):
    async def scenario(spill: Path | None) -> None:
        queue = BoundedQueue(capacity, policy, spill_path=spill)
        model, n = Model(policy, capacity), 0
        for op in ops:
            if op == "put":
                item = f"m{n}".encode()
                n += 1
                try:
                    await queue.put(item)
                except Overloaded:
                    pass
                model.put(item)
            elif model.items:
                assert await queue.get() == model.get()
            assert len(queue) == len(model.items)
            assert len(queue._items) <= capacity
        assert await drain(queue) == list(model.items)
        queue.close()

    with tempfile.TemporaryDirectory() as tmp:
        run(scenario(Path(tmp, "spill.db") if policy is Policy.SPILL else None))


def test_a_spilled_queue_closed_and_reopened_continues_in_order(tmp_path):
    async def scenario() -> list[bytes]:
        first = BoundedQueue(2, Policy.SPILL, spill_path=tmp_path / "q.db")
        for n in range(6):
            await first.put(f"m{n}".encode())
        assert await first.get() == b"m0"
        first.close()  # m1, m2 were in memory: written back in front of m3..m5
        second = BoundedQueue(2, Policy.SPILL, spill_path=tmp_path / "q.db")
        assert len(second) == 5
        await second.put(b"m6")  # behind everything that was spilled
        got = await drain(second)
        second.close()
        return got

    assert run(scenario()) == [f"m{n}".encode() for n in range(1, 7)]


def test_a_killed_process_loses_only_what_its_spilling_queue_held_in_memory(tmp_path):
    child = textwrap.dedent("""
        import asyncio, sys
        from snippets.messaging.backpressure_overflow import BoundedQueue, Policy
        async def fill():
            queue = BoundedQueue(2, Policy.SPILL, spill_path=sys.argv[1])
            for n in range(10):
                await queue.put(f"m{n}".encode())
            print("ready", flush=True)
            await asyncio.Event().wait()
        asyncio.run(fill())
    """)
    process = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "q.db")], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    async def reopen() -> list[bytes]:
        queue = BoundedQueue(2, Policy.SPILL, spill_path=tmp_path / "q.db")
        got = await drain(queue)
        queue.close()
        return got

    assert run(reopen()) == [f"m{n}".encode() for n in range(2, 10)]  # m0, m1 were in memory


def test_a_get_waits_for_a_put():
    async def scenario() -> bytes:
        queue = BoundedQueue(1, Policy.SHED)
        get = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not get.done()
        await queue.put(b"hello")
        return await get

    assert run(scenario()) == b"hello"


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((0,), {}, "capacity must be a positive int, got 0"),
    ((2.5,), {}, "capacity must be a positive int, got 2.5"),
    ((2, "drop"), {}, "unknown policy 'drop': use one of"),
    ((2, Policy.SPILL), {}, "spill_path is required by the spill policy and only by it"),
    ((2, Policy.BLOCK), {"spill_path": "x.db"}, "spill_path is required"),
])
def test_a_misconfigured_queue_is_refused_by_name(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BoundedQueue(*args, **kwargs)


def test_an_item_that_is_not_bytes_is_refused_and_loses_nothing_queued():
    async def scenario() -> list[bytes]:
        queue = await full(Policy.DROP_OLDEST)
        with pytest.raises(TypeError, match="items must be bytes, not str"):
            await queue.put("text")
        return await drain(queue)

    assert run(scenario()) == [b"m0", b"m1"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([Policy.BLOCK, Policy.SPILL]), st.integers(1, 4), st.integers(2, 6),
       st.integers(1, 3), st.lists(st.integers(0, 3), min_size=1, max_size=40))
def test_concurrent_producers_and_consumers_lose_nothing_keep_each_producers_order_and_bound_memory(
        policy, capacity, producers, consumers, yields):
    """Several producers put at once into a full queue while several consumers take:
    every item comes out exactly once, each producer's items in its own order, and memory
    never holds more than the capacity."""
    per_producer = 15
    got: list[tuple[int, int]] = []
    most = 0

    async def scenario(path: Path | None) -> None:
        nonlocal most
        queue = BoundedQueue(capacity, policy, spill_path=path)

        async def produce(p: int) -> None:
            nonlocal most
            for n in range(per_producer):
                await queue.put(f"{p}:{n}".encode())
                most = max(most, len(queue._items))
                for _ in range(yields[(p + n) % len(yields)]):
                    await asyncio.sleep(0)

        async def consume(share: int) -> None:
            nonlocal most
            for n in range(share):
                p, i = (await queue.get()).decode().split(":")
                got.append((int(p), int(i)))
                most = max(most, len(queue._items))
                for _ in range(yields[n % len(yields)]):
                    await asyncio.sleep(0)

        total = producers * per_producer
        shares = [total // consumers + (c < total % consumers) for c in range(consumers)]
        await asyncio.gather(*[produce(p) for p in range(producers)],
                             *[consume(s) for s in shares])
        assert len(queue) == 0
        queue.close()

    with tempfile.TemporaryDirectory() as tmp:
        run(scenario(Path(tmp, "spill.db") if policy is Policy.SPILL else None), timeout=30)
    assert sorted(got) == [(p, n) for p in range(producers) for n in range(per_producer)]
    for p in range(producers):
        assert [n for q, n in got if q == p] == list(range(per_producer))
    assert most <= capacity
