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


def test_the_demo_publishes_a_late_commit_and_rides_out_an_outage(postgres_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    run(main())
    assert capsys.readouterr().out == (
        "committed : entry 2 (entry 1 is still uncommitted)\n"
        "relay     : published 1 -> ['entry 2']\n"
        "committed : entry 1\n"
        "relay     : published 1 -> ['entry 2', 'entry 1']\n"
        "committed : entry 3; the broker fails the next 2 publishes\n"
        "relay     : waited 0.1 s, 0.2 s, then published -> ['entry 2', 'entry 1', 'entry 3']\n")


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


# ---------------------------------------------------------------- a broker outage (defect 9)
LOGGER = "snippets.messaging.message_persistence_outbox_postgres"


async def marked(conn: psycopg.AsyncConnection) -> list[int]:
    """Outbox ids marked published, in id order."""
    rows = await (await conn.execute(
        "SELECT id FROM outbox WHERE published_at IS NOT NULL ORDER BY id")).fetchall()
    return [row_id for (row_id,) in rows]


def test_run_rides_out_a_broker_outage_with_capped_backoff_and_loses_nothing(
        postgres_db, caplog):
    """The broker refuses 6 publishes in a row at entry 4 and 2 more at entry 8: the relay
    keeps going, waits 1, 2, 4, 8, 8, 8 s (capped), starts again at 1 s after the broker came
    back, marks nothing the broker did not take, and publishes all 10 in order, once."""
    caplog.set_level("WARNING", logger=LOGGER)

    async def scenario():
        conn = await connection(postgres_db)
        for n in range(10):
            await save_entry(conn, "ana", f"entry {n}")
        published: list[int] = []
        outages = {4: 6, 8: 2}  # entry -> publishes it fails before the broker takes it
        stop = asyncio.Event()
        waits: list[float] = []
        marked_while_waiting: list[list[int]] = []

        async def publish(topic: str, payload: bytes) -> None:
            entry = json.loads(payload)["entry_id"]
            if outages.get(entry, 0):
                outages[entry] -= 1
                raise ConnectionError(f"broker down at entry {entry}")
            published.append(entry)
            if len(published) == 10:
                stop.set()

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            marked_while_waiting.append(await marked(conn))

        relay = OutboxRelay(await connection(postgres_db), publish, batch=3, backoff=1,
                            max_backoff=8, sleep=sleep)
        await relay.run(stop, idle=5)
        return published, waits, marked_while_waiting, await marked(conn), relay.failures

    published, waits, during, after, failures = run(scenario())
    assert published == list(range(1, 11))
    assert waits == [1, 2, 4, 8, 8, 8, 1, 2]
    assert during == [[1, 2, 3]] * 6 + [[1, 2, 3, 4, 5, 6, 7]] * 2  # only what the broker took
    assert after == list(range(1, 11))
    assert failures == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"publish failed ({n} in a row): ConnectionError: broker down at entry {entry}; "
        f"rows kept, retrying in {wait:g} s"
        for n, entry, wait in [(1, 4, 1), (2, 4, 2), (3, 4, 4), (4, 4, 8), (5, 4, 8), (6, 4, 8),
                               (1, 8, 1), (2, 8, 2)]]


def test_the_backoff_stays_at_its_cap_however_long_the_outage(postgres_db):
    async def scenario():
        conn = await connection(postgres_db)
        await save_entry(conn, "ana", "ran 3 km")
        stop, waits = asyncio.Event(), []
        left = [200]

        async def publish(topic: str, payload: bytes) -> None:
            if left[0]:
                left[0] -= 1
                raise ConnectionError("still down")
            stop.set()

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        await OutboxRelay(await connection(postgres_db), publish, backoff=0.5, max_backoff=30,
                          sleep=sleep).run(stop, idle=5)
        return waits

    waits = run(scenario())
    assert waits[:8] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert len(waits) == 200 and set(waits[6:]) == {30}


def test_a_stopped_relay_does_not_sit_out_its_backoff(postgres_db):
    """Without an injected sleep the wait is on the stop event: stopping ends a 60 s wait."""
    async def scenario():
        conn = await connection(postgres_db)
        await save_entry(conn, "ana", "ran 3 km")
        stop, failed = asyncio.Event(), asyncio.Event()

        async def publish(topic: str, payload: bytes) -> None:
            failed.set()
            raise ConnectionError("down")

        relay = OutboxRelay(await connection(postgres_db), publish, backoff=60, max_backoff=60)
        task = asyncio.create_task(relay.run(stop))
        await asyncio.wait_for(failed.wait(), 20)
        stop.set()
        await asyncio.wait_for(task, 20)  # far less than the 60 s wait
        return relay.failures, await marked(conn)

    assert run(scenario()) == (1, [])


@pytest.mark.parametrize(("options", "message"), [
    ({"batch": 0}, "batch must be at least 1, got 0"),
    ({"backoff": 0}, "backoff must be > 0 and <= max_backoff, got backoff=0, max_backoff=30.0"),
    ({"backoff": 5, "max_backoff": 1},
     "backoff must be > 0 and <= max_backoff, got backoff=5, max_backoff=1"),
])
def test_bad_relay_settings_are_refused_by_name(options, message):
    async def publish(topic: str, payload: bytes) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError) as refused:
        OutboxRelay(None, publish, **options)  # type: ignore[arg-type]
    assert str(refused.value) == message


def test_without_an_injected_sleep_the_relay_waits_on_its_own_and_retries(postgres_db):
    async def scenario():
        conn = await connection(postgres_db)
        await save_entry(conn, "ana", "ran 3 km")
        stop, attempts = asyncio.Event(), []

        async def publish(topic: str, payload: bytes) -> None:
            attempts.append(json.loads(payload)["entry_id"])
            if len(attempts) <= 2:
                raise ConnectionError("down")
            stop.set()

        relay = OutboxRelay(await connection(postgres_db), publish, backoff=0.01,
                            max_backoff=0.02)
        await relay.run(stop, idle=5)
        return attempts, relay.failures, await marked(conn)

    assert run(scenario()) == ([1, 1, 1], 0, [1])


def test_the_boundary_settings_are_accepted():
    async def publish(topic: str, payload: bytes) -> None:
        raise AssertionError("never called")

    relay = OutboxRelay(None, publish, batch=1, backoff=0.5, max_backoff=0.5)  # type: ignore[arg-type]
    assert (relay.batch, relay.backoff, relay.max_backoff, relay.failures) == (1, 0.5, 0.5, 0)
    relay = OutboxRelay(None, publish)  # type: ignore[arg-type]
    assert (relay.batch, relay.backoff, relay.max_backoff, relay.sleep) == (100, 0.1, 30.0, None)


def test_an_idle_relay_runs_one_empty_batch_then_waits_for_a_notification(postgres_db):
    """Not a busy loop: between the empty batch and the commit that wakes it, it runs none."""
    async def scenario():
        batches: list[int] = []
        arrived, stop = asyncio.Event(), asyncio.Event()

        class Counting(OutboxRelay):
            async def _batch(self):
                done = await super()._batch()
                batches.append(done[0])
                return done

        async def publish(topic: str, payload: bytes) -> None:
            arrived.set()
            stop.set()

        relay = Counting(await connection(postgres_db), publish)
        task = asyncio.create_task(relay.run(stop, idle=60))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not batches and loop.time() < deadline:  # its first, empty, batch
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # time in which a busy loop would run many batches
        await save_entry(await connection(postgres_db), "ana", "ran 3 km")
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.wait_for(task, 10)
        return batches

    assert run(scenario()) == [0, 1]


def test_a_relay_publishing_to_redis_survives_a_redis_restart_and_publishes_each_row_once(
        postgres_db, redis_factory):
    """A real outage: Redis is stopped before entry 5 goes out and started again after the
    relay's third failed attempt. The stream ends with every entry once, in order."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    engine = redis_factory(appendonly=True)
    topic = f"entry.created.{os.getpid()}"

    async def scenario():
        conn = await connection(postgres_db)
        for n in range(12):
            await save_entry(conn, "ana", f"entry {n}")
        await conn.execute("UPDATE outbox SET topic = %s", (topic,))
        stream = redis.from_url(engine.url, retry=Retry(NoBackoff(), 0))
        stop, waits, errors = asyncio.Event(), [], []
        sent = 0

        async def publish(topic: str, payload: bytes) -> None:
            nonlocal sent
            if json.loads(payload)["entry_id"] == 5 and not waits:
                await asyncio.to_thread(engine.stop)  # the broker goes away
            try:
                await stream.xadd(topic, {"event": payload})
            except redis.ConnectionError as error:
                errors.append(type(error).__name__)
                raise
            sent += 1
            if sent == 12:
                stop.set()

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 3:
                await asyncio.to_thread(engine.start)  # and comes back

        relay = OutboxRelay(await connection(postgres_db), publish, batch=4, sleep=sleep)
        await relay.run(stop, idle=5)
        entries = [json.loads(fields[b"event"])["entry_id"]
                   for _, fields in await stream.xrange(topic)]
        await stream.aclose()
        return entries, waits, errors, await marked(conn)

    entries, waits, errors, done = run(scenario())
    assert errors == ["ConnectionError"] * 3
    assert waits == [0.1, 0.2, 0.4]
    assert entries == list(range(1, 13))  # none lost, none twice, in order
    assert done == list(range(1, 13))
