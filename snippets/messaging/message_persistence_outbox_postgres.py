"""The transactional outbox on PostgreSQL, with a relay that never skips a late commit.

``save_entry`` writes the entry and its ``entry.created`` event in one
transaction. The relay asks every time which rows are *unpublished*, instead
of remembering the highest id it has seen: identity values are handed out
when a row is inserted, not when its transaction commits, so a row with a
lower id can become visible after a higher one. A relay that resumed "after
id 42" would skip it forever. ``FOR UPDATE SKIP LOCKED`` lets several relays
run side by side without publishing the same row twice, and a trigger's
``NOTIFY`` (sent at commit) wakes an idle relay at once. Point it at your
own database with ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable

import psycopg

Publish = Callable[[str, bytes], Awaitable[object]]
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
        conn: an autocommit connection of the relay's own.
        publish: coroutine that returns once the broker has the event.
        batch: rows locked and published per transaction.
    """

    def __init__(self, conn: psycopg.AsyncConnection, publish: Publish, batch: int = 100) -> None:
        self.conn, self.publish, self.batch = conn, publish, batch

    # --8<-- [start:relay]
    async def run_once(self) -> int:
        """Publish one batch; return how many rows were published and marked.

        If a publish fails, the rows the broker already has are still marked
        (the transaction commits), then the error is raised.
        """
        done: list[int] = []
        failure: Exception | None = None
        async with self.conn.transaction():
            rows = await (await self.conn.execute(
                "SELECT id, topic, payload FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (self.batch,))).fetchall()
            for row_id, topic, payload in rows:
                try:
                    await self.publish(topic, bytes(payload))
                except Exception as error:  # noqa: BLE001 - any failure: keep what went out
                    failure = error
                    break
                done.append(row_id)
            await self.conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", (done,))
        if failure is not None:
            raise failure
        return len(done)
    # --8<-- [end:relay]

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Relay until ``stop`` is set; sleep on LISTEN between batches."""
        await self.conn.execute("LISTEN outbox")
        while not stop.is_set():
            if await self.run_once() == 0:
                async for _ in self.conn.notifies(timeout=idle, stop_after=1):
                    pass


async def main() -> int:
    """Two writers commit out of id order; the relay publishes both, in commit order."""
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    published: list[str] = []

    async def publish(topic: str, payload: bytes) -> None:
        published.append(f"entry {json.loads(payload)['entry_id']}")

    try:
        slow = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        print(f"cannot reach PostgreSQL at {url}: {error}\n"
              "Set DATABASE_URL to a PostgreSQL database you may write to.", file=sys.stderr)
        return 1
    await slow.execute("DROP SCHEMA IF EXISTS outbox_demo CASCADE")  # the demo's own schema
    await slow.execute("CREATE SCHEMA outbox_demo")
    fast = await psycopg.AsyncConnection.connect(url, autocommit=True)
    relay = OutboxRelay(await psycopg.AsyncConnection.connect(url, autocommit=True), publish)
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
    for conn in (slow, fast, relay.conn):
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
