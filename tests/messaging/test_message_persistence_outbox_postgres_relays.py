"""Several PostgreSQL outbox relays at once: why two relays skipping each other's locked
rows reorder a user's events, and how one active relay (holding an advisory lock) with
standbys keeps every user's order through disconnections and SIGKILL, at least once."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as redis

from snippets.messaging.message_persistence_outbox_postgres import (
    RELAY_LOCK,
    OutboxRelay,
    create_schema,
    save_entry,
)
from tests.messaging.conftest import run

ROOT = Path(__file__).resolve().parents[2]


async def connection(url: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await create_schema(conn)
    return conn


async def wait_for(check, what: str, timeout: float = 30) -> None:
    """Poll a database condition (a hand-off, not a timer); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def waiting_on(admin: psycopg.AsyncConnection, event: str) -> list[int]:
    """Backend pids of this database waiting on a lock of kind ``event``."""
    rows = await (await admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = %s ORDER BY pid", (event,))).fetchall()
    return [pid for (pid,) in rows]


async def lock_holder(admin: psycopg.AsyncConnection) -> list[int]:
    rows = await (await admin.execute(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE d.datname = current_database() AND l.locktype = 'advisory' "
        "AND l.objid = %s AND l.granted", (RELAY_LOCK,))).fetchall()
    return [pid for (pid,) in rows]


def first_occurrences(events: list[dict]) -> tuple[list[dict], int]:
    """What a deduplicating consumer applies (first delivery of each event id), and how
    many deliveries it skipped as duplicates."""
    seen: set[str] = set()
    applied = []
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            applied.append(event)
    return applied, len(events) - len(applied)


def out_of_order_users(applied: list[dict]) -> dict[str, list[int]]:
    """Users whose entries were applied out of row order, with the order they came in."""
    per_user: dict[str, list[int]] = defaultdict(list)
    for event in applied:
        per_user[event["user"]].append(event["entry_id"])
    return {user: ids for user, ids in per_user.items() if ids != sorted(ids)}


# ---------------------------------------------------------------- the old claim (defect 10)
async def skip_locked_batch(conn: psycopg.AsyncConnection, publish, batch: int) -> None:
    """The relay as it was: lock a batch with SKIP LOCKED, publish it, mark it."""
    async with conn.transaction():
        rows = await (await conn.execute(
            "SELECT id, payload FROM outbox WHERE published_at IS NULL "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (batch,))).fetchall()
        for _, payload in rows:
            await publish(bytes(payload))
        await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY(%s)",
                           ([r[0] for r in rows],))


def test_two_skip_locked_relays_publish_a_users_later_entries_before_an_earlier_one(
        postgres_db):
    """Ana writes 4 entries one after the other (her writes are serialized). Relay A locks
    entries 1 and 2 and is slow to publish the second; relay B skips A's rows, locks 3
    and 4 and publishes them first. A consumer sees Ana's entries as 1, 3, 4, 2."""
    async def scenario():
        writer = await connection(postgres_db)
        for n in range(4):
            await save_entry(writer, "ana", f"entry {n}")
        a_paused, a_go, order = asyncio.Event(), asyncio.Event(), []

        async def publish_a(payload: bytes) -> None:
            entry = json.loads(payload)["entry_id"]
            if entry == 2:
                a_paused.set()
                await a_go.wait()  # A is slow here (a GC pause, a slow broker round trip)
            order.append(entry)

        async def publish_b(payload: bytes) -> None:
            order.append(json.loads(payload)["entry_id"])

        a = asyncio.create_task(skip_locked_batch(await connection(postgres_db), publish_a, 2))
        await asyncio.wait_for(a_paused.wait(), 20)
        await skip_locked_batch(await connection(postgres_db), publish_b, 2)
        a_go.set()
        await asyncio.wait_for(a, 20)
        return order

    assert run(scenario()) == [1, 3, 4, 2]


def test_a_batch_run_while_another_holds_the_rows_waits_instead_of_jumping_ahead(postgres_db):
    """The same interleaving with run_once: B's SELECT ... FOR UPDATE waits on A's locked
    rows (PostgreSQL reports B as waiting on a lock), so Ana's entries go out 1, 2, 3, 4."""
    async def scenario():
        writer = await connection(postgres_db)
        admin = await connection(postgres_db)
        for n in range(4):
            await save_entry(writer, "ana", f"entry {n}")
        a_paused, a_go, order = asyncio.Event(), asyncio.Event(), []

        async def publish_a(topic: str, payload: bytes) -> None:
            entry = json.loads(payload)["entry_id"]
            if entry == 2:
                a_paused.set()
                await a_go.wait()
            order.append(entry)

        async def publish_b(topic: str, payload: bytes) -> None:
            order.append(json.loads(payload)["entry_id"])

        a = OutboxRelay(await connection(postgres_db), publish_a, batch=2)
        b = OutboxRelay(await connection(postgres_db), publish_b, batch=2)
        a_task = asyncio.create_task(a.run_once())
        await asyncio.wait_for(a_paused.wait(), 20)
        b_task = asyncio.create_task(b.run_once())
        b_pid = b.conn.info.backend_pid
        await wait_for(lambda: _has(admin, "transactionid", b_pid), "B waits on A's rows")
        published_while_a_held = list(order)
        a_go.set()
        return (published_while_a_held, await asyncio.wait_for(a_task, 20),
                await asyncio.wait_for(b_task, 20), order)

    assert run(scenario()) == ([1], 2, 2, [1, 2, 3, 4])


async def _has(admin: psycopg.AsyncConnection, event: str, pid: int) -> bool:
    return pid in await waiting_on(admin, event)


# ---------------------------------------------------------------- one active relay, standbys
def test_a_standby_publishes_nothing_while_the_active_relay_holds_the_lock_then_takes_over(
        postgres_db):
    """A holds the lock and is slow in the middle of its first batch; B stands by, waiting on
    the advisory lock, and publishes nothing. A is stopped: it finishes and marks its batch,
    releases the lock, and B publishes the rest. Seven entries, each once, in order."""
    async def scenario():
        writer, admin = await connection(postgres_db), await connection(postgres_db)
        for n in range(7):
            await save_entry(writer, "ana", f"entry {n}")
        a_paused, a_go = asyncio.Event(), asyncio.Event()
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        order: list[tuple[str, int]] = []

        async def publish_a(topic: str, payload: bytes) -> None:
            entry = json.loads(payload)["entry_id"]
            if entry == 2:
                a_paused.set()
                await a_go.wait()
            order.append(("A", entry))

        async def publish_b(topic: str, payload: bytes) -> None:
            order.append(("B", json.loads(payload)["entry_id"]))
            if len(order) == 7:
                stop_b.set()

        a = OutboxRelay(await connection(postgres_db), publish_a, batch=3)
        b = OutboxRelay(await connection(postgres_db), publish_b, batch=3)
        a_task = asyncio.create_task(a.run(stop_a, idle=5, standby=0.2))
        await asyncio.wait_for(a_paused.wait(), 20)
        b_task = asyncio.create_task(b.run(stop_b, idle=5, standby=0.2))
        b_pid = b.conn.info.backend_pid
        await wait_for(lambda: _has(admin, "advisory", b_pid), "B stands by on the lock")
        holders = await lock_holder(admin)
        during = list(order)
        stop_a.set()
        a_go.set()
        await asyncio.wait_for(asyncio.gather(a_task, b_task), 30)
        return holders == [a.conn.info.backend_pid], during, order, await lock_holder(admin)

    a_held, during, order, holders_after = run(scenario())
    assert a_held
    assert during == [("A", 1)]
    assert order == [("A", 1), ("A", 2), ("A", 3), ("B", 4), ("B", 5), ("B", 6), ("B", 7)]
    assert holders_after == []  # both released the lock on a clean stop


def test_a_standby_that_is_stopped_returns_without_taking_the_lock(postgres_db):
    async def scenario():
        admin = await connection(postgres_db)
        holder = await connection(postgres_db)
        await holder.execute("SELECT pg_advisory_lock(%s)", (RELAY_LOCK,))

        async def publish(topic: str, payload: bytes) -> None:
            raise AssertionError("a standby never publishes")

        stop = asyncio.Event()
        relay = OutboxRelay(await connection(postgres_db), publish)
        task = asyncio.create_task(relay.run(stop, standby=0.0004))  # waits of 1 ms, not 0
        pid = relay.conn.info.backend_pid
        await wait_for(lambda: _has(admin, "advisory", pid), "the relay stands by")
        stop.set()
        await asyncio.wait_for(task, 20)
        acquired = await relay.acquire(stop)
        return acquired, await lock_holder(admin) == [holder.info.backend_pid]

    assert run(scenario()) == (False, True)


def test_a_disconnected_active_relay_is_replaced_and_its_unmarked_batch_goes_back(postgres_db):
    """A has published entry 1 of its batch of 4 when its session is terminated (a network
    cut, a failover). The session's end releases the lock and rolls back A's batch: B,
    standing by, takes over and publishes entries 1 to 8. A, not yet aware, still sends the
    rest of its batch from memory, then fails to mark it. A consumer that skips ids it has
    seen applies 1 to 8 in order; the cost is 4 duplicates, one batch."""
    async def scenario():
        writer, admin = await connection(postgres_db), await connection(postgres_db)
        for n in range(8):
            await save_entry(writer, "ana", f"entry {n}")
        a_paused, a_go = asyncio.Event(), asyncio.Event()
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        log: list[tuple[str, dict]] = []

        async def publish_a(topic: str, payload: bytes) -> None:
            event = json.loads(payload)
            if event["entry_id"] == 2 and not a_go.is_set():
                a_paused.set()
                await a_go.wait()
            log.append(("A", event))

        async def publish_b(topic: str, payload: bytes) -> None:
            log.append(("B", json.loads(payload)))
            if sum(1 for who, _ in log if who == "B") == 8:
                stop_b.set()

        a = OutboxRelay(await connection(postgres_db), publish_a, batch=4)
        b = OutboxRelay(await connection(postgres_db), publish_b, batch=4)
        a_task = asyncio.create_task(a.run(stop_a, idle=5, standby=0.2))
        await asyncio.wait_for(a_paused.wait(), 20)
        b_task = asyncio.create_task(b.run(stop_b, idle=5, standby=0.2))
        b_pid = b.conn.info.backend_pid
        await wait_for(lambda: _has(admin, "advisory", b_pid), "B stands by on the lock")
        before_cut = [(who, e["entry_id"]) for who, e in log]
        await admin.execute("SELECT pg_terminate_backend(%s, 10000)", (a.conn.info.backend_pid,))
        await asyncio.wait_for(b_task, 30)  # B took over and published all 8
        a_go.set()
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(a_task, 30)
        check = await connection(postgres_db)
        left = await (await check.execute(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL")).fetchone()
        return before_cut, log, left

    before_cut, log, left = run(scenario())
    assert before_cut == [("A", 1)]
    assert [(who, e["entry_id"]) for who, e in log] == (
        [("A", 1)] + [("B", n) for n in range(1, 9)] + [("A", 2), ("A", 3), ("A", 4)])
    applied, duplicates = first_occurrences([e for _, e in log])
    assert [e["entry_id"] for e in applied] == list(range(1, 9))
    assert duplicates == 4
    assert left == (0,)


def test_many_relays_and_writers_keep_every_users_order_through_disconnections(postgres_db):
    """3,000 entries of 60 users from 10 concurrent writers (each user's writes serialized,
    the writers' commits interleaved out of id order), 3 relays with batches of 50 that
    start when half is written; the active relay's session is terminated twice mid-batch
    and a fresh relay joins each time.
    Every entry is published, every user's entries come first-time in row order, and each
    cut costs at most one batch of duplicates."""
    batch, users, writers, per_writer = 50, 60, 10, 300
    cuts_at = {700, 1700}

    async def scenario():
        admin = await connection(postgres_db)
        delivered: list[tuple[str, dict]] = []
        stop = asyncio.Event()
        cut: list[str] = []
        crashed: list[str] = []
        names = iter(f"relay{n}" for n in range(1, 100))
        written, backlog = [0], asyncio.Event()

        def publisher(name: str, pid: int):
            async def publish(topic: str, payload: bytes) -> None:
                delivered.append((name, json.loads(payload)))  # the broker has it
                if len(delivered) in cuts_at:  # now cut this relay's session, mid-batch
                    cut.append(name)
                    await admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
                await asyncio.sleep(0)
            return publish

        async def supervised() -> None:
            await backlog.wait()  # start with a backlog, so that batches are full
            while not stop.is_set():
                conn = await connection(postgres_db)
                name = next(names)
                relay = OutboxRelay(conn, publisher(name, conn.info.backend_pid), batch=batch)
                try:
                    await relay.run(stop, idle=0.2, standby=0.2)
                except psycopg.OperationalError:
                    crashed.append(name)  # its session is gone: start a fresh relay
                finally:
                    await conn.close()

        async def writer(n: int) -> None:
            conn = await connection(postgres_db)
            rng = random.Random(n)
            mine = [f"user{u:02d}" for u in range(n, users, writers)]
            for i in range(per_writer):
                async with conn.transaction():  # one writer per user: serialized per user
                    await save_entry(conn, rng.choice(mine), f"entry {i}")
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)  # commits interleave out of id order
                written[0] += 1
                if written[0] == writers * per_writer // 2:
                    backlog.set()
            await conn.close()

        relays = [asyncio.create_task(supervised()) for _ in range(3)]
        await asyncio.gather(*(writer(n) for n in range(writers)))

        async def all_marked() -> bool:
            row = await (await admin.execute(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL")).fetchone()
            return row == (0,) and len(cut) == len(cuts_at)

        await wait_for(all_marked, "every row marked", timeout=120)
        stop.set()
        await asyncio.gather(*relays)
        rows = await (await admin.execute(
            "SELECT payload FROM outbox ORDER BY id")).fetchall()
        return [json.loads(bytes(p)) for (p,) in rows], delivered, cut, crashed

    stored, delivered, cut, crashed = run(scenario(), timeout=240)
    assert len(stored) == writers * per_writer
    applied, duplicates = first_occurrences([e for _, e in delivered])
    assert sorted(e["event_id"] for e in applied) == sorted(e["event_id"] for e in stored)
    assert out_of_order_users(applied) == {}
    assert len({e["user"] for e in applied}) == users
    assert sorted(cut) == sorted(crashed) and len(set(cut)) == 2
    assert 2 <= duplicates <= 2 * batch  # one batch at most per cut
    assert len({name for name, _ in delivered}) >= 3  # two replaced, a third finished


# ---------------------------------------------------------------- SIGKILL, relays as processes
RELAY = """
    import asyncio, signal, sys
    import psycopg
    import redis.asyncio as redis
    from snippets.messaging.message_persistence_outbox_postgres import OutboxRelay

    database, redis_url, stream, name, block_after = sys.argv[1:]

    async def main():
        store = redis.from_url(redis_url)
        stop, sent = asyncio.Event(), 0
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

        async def publish(topic, payload):
            nonlocal sent
            await store.xadd(stream, {"event": payload, "relay": name})  # Redis has it now
            sent += 1
            if sent == int(block_after or 0):  # hang before the mark: the test kills us here
                print("blocked", flush=True)
                await asyncio.Event().wait()

        conn = await psycopg.AsyncConnection.connect(database, autocommit=True)
        print("connected", conn.info.backend_pid, flush=True)
        await OutboxRelay(conn, publish, batch=50).run(stop, idle=0.2, standby=0.2)
        await store.aclose()

    asyncio.run(main())
"""


class Child:
    """A relay process and the lines it prints, read on a thread (no blocking reads)."""

    def __init__(self, database: str, redis_url: str, stream: str, name: str,
                 block_after: int | None) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RELAY), database, redis_url, stream, name,
             str(block_after or "")], cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        words = self.line().split()
        assert words[0] == "connected", words
        self.pid = int(words[1])

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("(exited)")

    def line(self, timeout: float = 60) -> str:
        return self.lines.get(timeout=timeout)


def test_relays_killed_with_sigkill_mid_batch_are_replaced_and_every_users_order_holds(
        postgres_db, redis_server):
    """1,000 entries of 25 users. Relay A hangs after its 130th publish (30 into its third
    batch of 50) and is killed with SIGKILL while B stands by; B re-sends A's 30 and hangs
    after 200 publishes (the last of its fourth batch) and is killed while C and D stand
    by; one of them publishes the rest, the other never publishes. Redis receives every
    entry, every user's entries first-time in row order, and 30 + 50 duplicates."""
    stream = f"outbox.sigkill.{os.getpid()}"

    async def write() -> None:
        conn = await connection(postgres_db)
        rng = random.Random(7)
        for i in range(1000):
            await save_entry(conn, f"user{rng.randrange(25):02d}", f"entry {i}")
        await conn.close()

    async def standing_by(pids: list[int]) -> None:
        admin = await connection(postgres_db)
        await wait_for(lambda: _all_waiting(admin, pids), f"{pids} stand by on the lock", 60)
        await admin.close()

    async def finished() -> list[int]:
        admin = await connection(postgres_db)
        await wait_for(lambda: _none_left(admin), "every row marked", 120)
        await admin.close()

    def start(name: str, block_after: int | None) -> Child:
        return Child(postgres_db, redis_server.url, stream, name, block_after)

    def kill(child: Child) -> None:
        child.process.send_signal(signal.SIGKILL)
        assert child.process.wait(30) == -signal.SIGKILL

    run(write())
    children = [start("A", 130)]
    try:
        assert children[0].line() == "blocked"
        children.append(start("B", 200))
        run(standing_by([children[1].pid]))
        kill(children[0])
        assert children[1].line() == "blocked"
        children += [start("C", None), start("D", None)]
        run(standing_by([children[2].pid, children[3].pid]))
        kill(children[1])
        run(finished())
        for child in children[2:]:
            child.process.send_signal(signal.SIGTERM)
            assert child.process.wait(30) == 0
    finally:
        for child in children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait(10)

    async def read() -> list[tuple[str, dict]]:
        store = redis.from_url(redis_server.url)
        got = [(fields[b"relay"].decode(), json.loads(fields[b"event"]))
               for _, fields in await store.xrange(stream)]
        await store.delete(stream)
        await store.aclose()
        return got

    got = run(read())
    counts = {name: sum(1 for who, _ in got if who == name) for name in "ABCD"}
    assert counts["A"] == 130 and counts["B"] == 200
    assert sorted([counts["C"], counts["D"]]) == [0, 750]  # one finished, one stood by
    applied, duplicates = first_occurrences([e for _, e in got])
    assert [e["entry_id"] for e in applied] == list(range(1, 1001))  # hence each user's order
    assert out_of_order_users(applied) == {}
    assert duplicates == 30 + 50
    # what B re-sent is exactly A's unmarked 30, what the last relay re-sent B's last 50
    b_first = [e["entry_id"] for who, e in got if who == "B"][:30]
    assert b_first == list(range(101, 131))


async def _all_waiting(admin: psycopg.AsyncConnection, pids: list[int]) -> bool:
    return set(pids) <= set(await waiting_on(admin, "advisory"))


async def _none_left(admin: psycopg.AsyncConnection) -> bool:
    row = await (await admin.execute(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL")).fetchone()
    return row == (0,)
