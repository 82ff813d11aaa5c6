"""The PostgreSQL outbox against a real server: late commits, concurrent writers and
relays, a relay killed with SIGKILL between publish and mark, and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as redis

from snippets.messaging.message_persistence_outbox_postgres import (
    OutboxRelay,
    create_schema,
    main,
    save_entry,
)
from tests.messaging.conftest import run

ROOT = Path(__file__).resolve().parents[2]


async def connection(url: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await create_schema(conn)
    return conn


def test_the_demo_publishes_a_late_commit_instead_of_skipping_it(postgres_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    run(main())
    assert capsys.readouterr().out == (
        "committed : entry 2 (entry 1 is still uncommitted)\n"
        "relay     : published 1 -> ['entry 2']\n"
        "committed : entry 1\n"
        "relay     : published 1 -> ['entry 2', 'entry 1']\n")


def test_a_high_water_mark_relay_would_skip_the_late_commit_and_this_relay_does_not(postgres_db):
    async def scenario():
        slow, fast, relay_conn = [await connection(postgres_db) for _ in range(3)]
        published: list[int] = []

        async def publish(topic: str, payload: bytes) -> None:
            published.append(json.loads(payload)["entry_id"])

        relay = OutboxRelay(relay_conn, publish)
        naive_seen: list[int] = []
        last_id = 0

        async def naive_relay() -> None:  # "publish everything after the last id I saw"
            nonlocal last_id
            rows = await (await relay_conn.execute(
                "SELECT id FROM outbox WHERE id > %s ORDER BY id", (last_id,))).fetchall()
            for (row_id,) in rows:
                naive_seen.append(row_id)
                last_id = row_id

        async with slow.transaction():
            await save_entry(slow, "ana", "ran 3 km")       # takes outbox id 1
            await save_entry(fast, "ben", "slept badly")    # takes id 2, commits first
            await naive_relay()
            await relay.run_once()
        await naive_relay()
        await relay.run_once()
        return naive_seen, published

    naive_seen, published = run(scenario())
    assert naive_seen == [2]          # id 1 committed after the mark moved past it: lost
    assert sorted(published) == [1, 2]


def test_eight_concurrent_writers_and_two_relays_publish_every_event_exactly_once(postgres_db):
    async def scenario():
        published: list[str] = []

        async def publish(topic: str, payload: bytes) -> None:
            published.append(json.loads(payload)["event_id"])
            await asyncio.sleep(0)

        async def writer(n: int) -> None:
            conn = await connection(postgres_db)
            rng = random.Random(n)
            for i in range(25):
                async with conn.transaction():  # commits interleave out of id order
                    await save_entry(conn, f"user{n}", f"entry {i}")
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)
            await conn.close()

        stop = asyncio.Event()
        relays = [OutboxRelay(await connection(postgres_db), publish, batch=7) for _ in range(2)]
        running = [asyncio.create_task(r.run(stop, idle=0.2)) for r in relays]
        await asyncio.gather(*(writer(n) for n in range(8)))
        check = await connection(postgres_db)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while loop.time() < deadline:
            left = await (await check.execute(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL")).fetchone()
            if left == (0,):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*running)
        all_ids = [str(r[0]) for r in await (await check.execute(
            "SELECT event_id FROM outbox")).fetchall()]
        return published, all_ids

    published, all_ids = run(scenario())
    assert len(all_ids) == 200
    assert sorted(published) == sorted(all_ids)  # every one, none twice


RELAY_KILLED = """
    import asyncio, os, signal, sys
    import psycopg
    import redis.asyncio as redis
    from snippets.messaging.message_persistence_outbox_postgres import OutboxRelay

    database, redis_url = sys.argv[1:]

    async def main():
        stream = redis.from_url(redis_url)
        published = 0

        async def publish(topic, payload):
            nonlocal published
            await stream.xadd(topic, {"event": payload})  # Redis has it now
            published += 1
            if published == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # between publish and mark

        conn = await psycopg.AsyncConnection.connect(database, autocommit=True)
        await OutboxRelay(conn, publish).run_once()

    asyncio.run(main())
"""


def test_a_relay_killed_between_publish_and_mark_duplicates_but_loses_nothing(
        postgres_db, redis_server):
    topic = f"entry.created.{os.getpid()}"

    async def write() -> None:
        conn = await connection(postgres_db)
        for text in ("one", "two", "three"):
            await save_entry(conn, "ana", text)
        await conn.execute("UPDATE outbox SET topic = %s", (topic,))
        await conn.close()

    async def restart_and_read() -> tuple[list[int], int]:
        stream = redis.from_url(redis_server.url)

        async def publish(topic: str, payload: bytes) -> None:
            await stream.xadd(topic, {"event": payload})

        conn = await connection(postgres_db)
        await OutboxRelay(conn, publish).run_once()
        unpublished = await (await conn.execute(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL")).fetchone()
        seen, applied, duplicates = set(), [], 0
        for _, fields in await stream.xrange(topic):
            event = json.loads(fields[b"event"])
            if event["event_id"] in seen:
                duplicates += 1
                continue
            seen.add(event["event_id"])
            applied.append(event["entry_id"])
        await stream.aclose()
        await conn.close()
        assert unpublished == (0,)
        return applied, duplicates

    run(write())
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(RELAY_KILLED), postgres_db,
                           redis_server.url], cwd=ROOT, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL
    applied, duplicates = run(restart_and_read())
    # The killed transaction marked nothing: both events it sent go out again.
    assert sorted(applied) == [1, 2, 3] and duplicates == 2


def test_a_failing_publish_marks_what_the_broker_already_has(postgres_db):
    async def scenario():
        conn = await connection(postgres_db)
        for text in ("one", "two", "three"):
            await save_entry(conn, "ana", text)
        got: list[int] = []

        async def flaky(topic: str, payload: bytes) -> None:
            entry = json.loads(payload)["entry_id"]
            if entry == 3 and not got.count(-1):
                got.append(-1)
                raise ConnectionError("broker went away")
            got.append(entry)

        relay = OutboxRelay(await connection(postgres_db), flaky)
        with pytest.raises(ConnectionError):
            await relay.run_once()
        again = await relay.run_once()
        return got, again

    got, again = run(scenario())
    assert got == [1, 2, -1, 3] and again == 1  # 1 and 2 were marked despite the failure


def test_an_empty_entry_is_refused_and_nothing_stored_is_lost(postgres_db):
    async def scenario():
        conn = await connection(postgres_db)
        await save_entry(conn, "ana", "ran 3 km")
        with pytest.raises(ValueError, match="entry of 'ana' is empty"):
            await save_entry(conn, "ana", "")
        counts = [await (await conn.execute(f"SELECT count(*) FROM {t}")).fetchone()
                  for t in ("entries", "outbox")]
        await conn.close()
        return counts

    assert run(scenario()) == [(1,), (1,)]


def test_an_idle_relay_is_woken_by_the_commit_not_by_its_timer(postgres_db):
    async def scenario():
        arrived = asyncio.Event()

        async def publish(topic: str, payload: bytes) -> None:
            arrived.set()

        stop = asyncio.Event()
        relay = OutboxRelay(await connection(postgres_db), publish)
        task = asyncio.create_task(relay.run(stop, idle=60))
        await asyncio.sleep(0.2)  # let it go idle on LISTEN
        await save_entry(await connection(postgres_db), "ana", "ran 3 km")
        await asyncio.wait_for(arrived.wait(), 10)  # far less than the 60 s idle timer
        stop.set()
        await save_entry(await connection(postgres_db), "ana", "wake up to stop")
        await asyncio.wait_for(task, 10)

    run(scenario())
