"""The transactional outbox on PostgreSQL: a relay that never skips a late commit,
keeps each user's events in order, and rides out a broker outage.

``save_entry`` writes the entry and its ``entry.created`` event in one
transaction. The relay (a *polling publisher*) asks every time which rows
are *unpublished*, instead of remembering the highest id it has seen:
identity values are handed out when a row is inserted, not when its
transaction commits, so a row with a lower id can become visible after a
higher one, and a relay that resumed "after id 42" would skip it forever.

Only one relay publishes at a time. Each relay first takes a session-level
advisory lock; the others wait for it, and PostgreSQL hands it to one of
them the moment the active relay's session ends, rolling back the batch it
had not marked. Two relays publishing side by side (``FOR UPDATE SKIP
LOCKED``) would reorder a user's events. When the broker fails, the relay
keeps the rows, waits with capped exponential backoff and tries again. A
trigger's ``NOTIFY`` (sent at commit) wakes an idle relay at once. Point it
at your own database with ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable

import psycopg

Publish = Callable[[str, bytes], Awaitable[object]]
Sleep = Callable[[float], Awaitable[object]]
RELAY_LOCK = 4244  # advisory lock key: one active relay per database
log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name text NOT NULL, text text NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE, topic text NOT NULL, payload bytea NOT NULL,
    published_at timestamptz);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""


async def create_schema(conn: psycopg.AsyncConnection) -> None:
    """Create the tables and the trigger (idempotent, one session at a time)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(4243)")
        await conn.execute(SCHEMA)


# --8<-- [start:save]
async def save_entry(conn: psycopg.AsyncConnection, user: str, text: str) -> int:
    """Store the entry and its event in one transaction: both or neither."""
    if not text.strip():
        raise ValueError(f"entry of {user!r} is empty: nothing to save")
    async with conn.transaction():
        cursor = await conn.execute(
            "INSERT INTO entries (user_name, text) VALUES (%s, %s) RETURNING id", (user, text))
        (entry_id,) = await cursor.fetchone()
        event = {"event_id": str(uuid.uuid4()), "entry_id": entry_id, "user": user}
        await conn.execute("INSERT INTO outbox (event_id, topic, payload) VALUES (%s, %s, %s)",
                           (event["event_id"], "entry.created", json.dumps(event).encode()))
    return entry_id
# --8<-- [end:save]


class OutboxRelay:
    """Publishes unpublished outbox rows in id order and marks them.

    Args:
        conn: an autocommit connection of the relay's own (it holds the relay lock).
        publish: coroutine that returns once the broker has confirmed the event.
        batch: rows locked, published and marked per transaction; also the most
            events a relay that dies can leave to be published twice.
        backoff: seconds to wait after the first failed batch; doubled after each
            further failure in a row.
        max_backoff: the longest wait between two attempts.
        sleep: how to wait between attempts (for tests); by default the wait ends
            early when the relay is stopped.

    Raises:
        ValueError: a batch below 1, or a backoff that is not positive or is
            above ``max_backoff``.
    """

    def __init__(self, conn: psycopg.AsyncConnection, publish: Publish, batch: int = 100, *,
                 backoff: float = 0.1, max_backoff: float = 30.0,
                 sleep: Sleep | None = None) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        if not 0 < backoff <= max_backoff:
            raise ValueError(f"backoff must be > 0 and <= max_backoff, "
                             f"got backoff={backoff}, max_backoff={max_backoff}")
        self.conn, self.publish, self.batch = conn, publish, batch
        self.backoff, self.max_backoff, self.sleep = backoff, max_backoff, sleep
        self.failures = 0  # batches in a row that ended with a failed publish

    # --8<-- [start:relay]
    async def run_once(self) -> int:
        """Publish one batch; return how many rows were published and marked.

        If a publish fails, the rows the broker already has are still marked
        (the transaction commits), then the error is raised; the failed row
        and the rest of the batch stay unpublished.
        """
        done, failure = await self._batch()
        if failure is not None:
            raise failure
        return done

    async def _batch(self) -> tuple[int, Exception | None]:
        """Publish and mark one batch; return the count marked and the failure, if any."""
        done: list[int] = []
        failure: Exception | None = None
        async with self.conn.transaction():
            # FOR UPDATE without SKIP LOCKED: wait for rows another relay holds, never skip them
            rows = await (await self.conn.execute(
                "SELECT id, topic, payload FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT %s FOR UPDATE", (self.batch,))).fetchall()
            for row_id, topic, payload in rows:
                try:
                    await self.publish(topic, bytes(payload))
                except Exception as error:  # noqa: BLE001 - any failure: keep what went out
                    failure = error
                    break
                done.append(row_id)
            await self.conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", (done,))
        return len(done), failure
    # --8<-- [end:relay]

    # --8<-- [start:lock]
    async def acquire(self, stop: asyncio.Event, standby: float = 1.0) -> bool:
        """Wait until this relay holds the relay lock.

        The lock belongs to the session: PostgreSQL releases it when the
        session ends, however the relay died, and grants it to one waiting
        relay at once. ``standby`` bounds each wait, so that a stop is noticed.

        Returns:
            True once the lock is held; False if ``stop`` was set first.
        """
        timeout = f"{max(1, round(standby * 1000))}ms"
        while not stop.is_set():
            try:
                async with self.conn.transaction():
                    await self.conn.execute("SELECT set_config('lock_timeout', %s, true)",
                                            (timeout,))
                    await self.conn.execute("SELECT pg_advisory_lock(%s)", (RELAY_LOCK,))
                return True
            except psycopg.errors.LockNotAvailable:
                continue  # another relay is active: keep standing by
        return False
    # --8<-- [end:lock]

    # --8<-- [start:run]
    async def run(self, stop: asyncio.Event, idle: float = 1.0, standby: float = 1.0) -> None:
        """Relay until ``stop`` is set: stand by for the lock, then publish.

        A failed publish never ends the run: the unpublished rows stay, the
        failure is logged, and the relay waits ``backoff``, twice that, and so
        on up to ``max_backoff`` before trying again. Any other error ends
        the run: close the connection (that releases the lock, if the
        session has not ended already) and start a new relay, which stands by
        until the lock is free. On a clean stop the lock is released.
        """
        if not await self.acquire(stop, standby):
            return
        await self.conn.execute("LISTEN outbox")
        while not stop.is_set():
            published, failure = await self._batch()
            if failure is not None:
                await self._back_off(stop, failure)
                continue
            self.failures = 0
            if published == 0:  # nothing to do: sleep until a commit notifies
                async for _ in self.conn.notifies(timeout=idle, stop_after=1):
                    pass
        await self.conn.execute("UNLISTEN outbox")
        await self.conn.execute("SELECT pg_advisory_unlock(%s)", (RELAY_LOCK,))

    async def _back_off(self, stop: asyncio.Event, failure: Exception) -> None:
        self.failures += 1
        delay = min(self.max_backoff, self.backoff * 2 ** min(self.failures - 1, 64))
        log.warning("publish failed (%d in a row): %s: %s; rows kept, retrying in %g s",
                    self.failures, type(failure).__name__, failure, delay)
        if self.sleep is not None:
            await self.sleep(delay)
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
    # --8<-- [end:run]


async def main() -> int:
    """A late commit is published, not skipped; a broker outage delays, never loses."""
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    published: list[str] = []
    outage = [ConnectionError("broker down")] * 2  # what the two publishes after entry 1 get
    stop, waits = asyncio.Event(), []

    async def publish(topic: str, payload: bytes) -> None:
        if len(published) == 2 and outage:
            raise outage.pop()
        published.append(f"entry {json.loads(payload)['entry_id']}")
        if len(published) == 3:
            stop.set()

    async def record_wait(seconds: float) -> None:
        waits.append(f"{seconds:g} s")

    try:
        slow = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        print(f"cannot reach PostgreSQL at {url}: {error}\n"
              "Set DATABASE_URL to a PostgreSQL database you may write to.", file=sys.stderr)
        return 1
    await slow.execute("DROP SCHEMA IF EXISTS outbox_demo CASCADE")  # the demo's own schema
    await slow.execute("CREATE SCHEMA outbox_demo")
    fast = await psycopg.AsyncConnection.connect(url, autocommit=True)
    relay = OutboxRelay(await psycopg.AsyncConnection.connect(url, autocommit=True), publish,
                        sleep=record_wait)
    for conn in (slow, fast, relay.conn):
        await conn.execute("SET search_path TO outbox_demo")
    await create_schema(slow)
    async with slow.transaction():  # the slow writer's transaction stays open...
        first = await save_entry(slow, "ana", "ran 3 km")
        second = await save_entry(fast, "ben", "slept badly")  # ...while this one commits
        print(f"committed : entry {second} (entry {first} is still uncommitted)")
        print(f"relay     : published {await relay.run_once()} -> {published}")
    print(f"committed : entry {first}")
    print(f"relay     : published {await relay.run_once()} -> {published}")
    third = await save_entry(fast, "ana", "set a goal: 10 km")
    print(f"committed : entry {third}; the broker fails the next 2 publishes")
    await relay.run(stop)
    print(f"relay     : waited {', '.join(waits)}, then published -> {published}")
    for conn in (slow, fast, relay.conn):
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
