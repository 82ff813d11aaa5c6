"""Competing consumers and fan-out on PostgreSQL with ``FOR UPDATE SKIP LOCKED``.

A publish inserts one row per group subscribed to the topic (fan-out) in
one transaction, and sends a ``NOTIFY`` that wakes waiting consumers after
the commit. A consumer leases a batch of its group's rows in one statement:
``SKIP LOCKED`` lets any number of consumers do so at once without ever
taking the same row, and the lease (``visible_at``) makes a row visible
again if the consumer dies before acknowledging, which deletes it. Point it
at your own database with ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass

import psycopg

NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
MAX_BODY = 1024 * 1024
# fillfactor 50 leaves room in each page, so that the lease's UPDATE can put the new
# row version on the same page without touching the indexes (a "HOT" update).
SCHEMA = """
CREATE TABLE IF NOT EXISTS mq_groups (
    topic text NOT NULL, grp text NOT NULL, PRIMARY KEY (topic, grp));
CREATE TABLE IF NOT EXISTS mq_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL, grp text NOT NULL, body bytea NOT NULL,
    deliveries int NOT NULL DEFAULT 0,
    visible_at timestamptz NOT NULL DEFAULT now()) WITH (fillfactor = 50);
CREATE INDEX IF NOT EXISTS mq_messages_next ON mq_messages (topic, grp, id);
"""
# One statement: one round trip, and its own transaction (the connection is in
# autocommit), so the rows and the NOTIFY commit together or not at all.
PUBLISH = """
WITH inserted AS (
    INSERT INTO mq_messages (topic, grp, body)
    SELECT g.topic, g.grp, u.body
      FROM mq_groups g, unnest(%(bodies)s::bytea[]) WITH ORDINALITY AS u(body, n)
     WHERE g.topic = %(topic)s ORDER BY u.n, g.grp
    RETURNING 1)
SELECT (SELECT count(*) FROM inserted), pg_notify('mq', %(topic)s)
"""
# --8<-- [start:lease]
LEASE = """
UPDATE mq_messages SET deliveries = deliveries + 1,
                       visible_at = now() + make_interval(secs => %(lease)s)
 WHERE id IN (SELECT id FROM mq_messages
               WHERE topic = %(topic)s AND grp = %(grp)s AND visible_at <= now()
               ORDER BY id LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED)
RETURNING id, body, deliveries
"""
# --8<-- [end:lease]


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery: the row id, the payload and how often it was leased."""

    id: str
    body: bytes
    deliveries: int


def check(topic: str, body: bytes | None = None, max_body: int = MAX_BODY) -> None:
    """Refuse a malformed topic or an oversized or non-bytes body, naming the problem."""
    if not isinstance(topic, str) or not NAME.fullmatch(topic):
        raise ValueError(f"invalid name {topic!r}: use dotted lowercase words like 'coaching.entries'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"message body must be bytes, not {type(body).__name__}")
    if body is not None and len(body) > max_body:
        raise ValueError(f"message of {len(body)} bytes exceeds the {max_body}-byte limit")


class PostgresBroker:
    """A table of rows, one per (message, group); leases instead of locks held open.

    Args:
        conn: an autocommit ``psycopg.AsyncConnection`` used for publishing.
        url: the database URL, for the consumers' own connections.
        lease: seconds a leased row stays invisible to the other consumers.
    """

    def __init__(self, conn: psycopg.AsyncConnection, url: str, *, lease: float = 30.0,
                 max_body: int = MAX_BODY) -> None:
        self.conn, self.url, self.lease, self.max_body = conn, url, lease, max_body

    async def subscribe(self, topic: str, group: str) -> None:
        """Register the group (idempotent): it gets a row for every later message."""
        check(topic)
        check(group)
        await self.conn.execute("INSERT INTO mq_groups VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                (topic, group))

    async def publish(self, topic: str, body: bytes) -> int:
        """Insert a row per subscribed group and notify, atomically; return the row count."""
        return await self.publish_many(topic, [body])

    async def publish_many(self, topic: str, bodies: list[bytes]) -> int:
        """Insert several messages for every group in one statement and one transaction."""
        for body in bodies:
            check(topic, body, self.max_body)
        cursor = await self.conn.execute(PUBLISH, {"bodies": bodies, "topic": topic})
        return (await cursor.fetchone())[0]

    async def consumer(self, topic: str, group: str, name: str) -> PostgresConsumer:
        """A consumer with its own connection, listening for new rows."""
        await self.subscribe(topic, group)
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await conn.execute("LISTEN mq")
        return PostgresConsumer(conn, topic, group, name, self.lease)

    async def close(self) -> None:
        """Close the publishing connection."""
        await self.conn.close()


class PostgresConsumer:
    """Leases batches with SKIP LOCKED; acknowledging deletes the rows."""

    def __init__(self, conn: psycopg.AsyncConnection, topic: str, group: str, name: str,
                 lease: float) -> None:
        self.conn, self.topic, self.group, self.name, self.lease = conn, topic, group, name, lease
        self._held: set[int] = set()

    async def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Lease up to ``max_messages`` ready rows; wait at most ``timeout`` s for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        params = {"lease": self.lease, "topic": self.topic, "grp": self.group,
                  "limit": max_messages}
        while True:
            rows = sorted(await (await self.conn.execute(LEASE, params)).fetchall())
            if rows:
                self._held.update(row[0] for row in rows)
                return [Message(str(i), bytes(body), n) for i, body, n in rows]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            # Sleep until a NOTIFY arrives, or a quarter lease passes (leases expire silently).
            async for _ in self.conn.notifies(timeout=min(remaining, self.lease / 4),
                                              stop_after=1):
                pass

    async def ack(self, messages: list[Message]) -> None:
        """Delete the rows: they are done for good."""
        ids = [int(m.id) for m in messages]
        if ids:
            await self.conn.execute("DELETE FROM mq_messages WHERE id = ANY(%s)", (ids,))
            self._held.difference_update(ids)

    async def close(self) -> None:
        """Hand back what is still leased here, then close the connection."""
        if self._held and not self.conn.closed:
            await self.conn.execute("UPDATE mq_messages SET visible_at = now() WHERE id = ANY(%s)",
                                    (list(self._held),))
        await self.conn.close()


async def connect(url: str | None = None, *, attempts: int = 3, **options: float) -> PostgresBroker:
    """Connect to ``url`` (default ``DATABASE_URL``), create the tables, or fail clearly."""
    url = url or os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=2)
            break
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise ConnectionError(
                    f"cannot reach PostgreSQL at {url} after {attempts} attempts: {error}") from error
            await asyncio.sleep(0.1 * 2**attempt)
    async with conn.transaction():  # one creator at a time: IF NOT EXISTS is not race-free
        await conn.execute("SELECT pg_advisory_xact_lock(4242)")
        await conn.execute(SCHEMA)
    return PostgresBroker(conn, url, **options)


async def main() -> int:
    """Six journal entries: two coaches share them, the reflection gets all six."""
    try:
        broker = await connect(lease=1.0)
    except ConnectionError as error:
        print(f"{error}\nSet DATABASE_URL to a PostgreSQL database you may write to.", file=sys.stderr)
        return 1
    topic = "coaching.entries"
    await broker.conn.execute("DELETE FROM mq_messages WHERE topic = %s", (topic,))
    await broker.subscribe(topic, "coaches")
    await broker.subscribe(topic, "reflection")
    for n in range(1, 7):
        await broker.publish(topic, f"entry-{n}".encode())

    reflection = await broker.consumer(topic, "reflection", "evening")
    got = await reflection.receive(max_messages=10)
    await reflection.ack(got)
    print(f"reflection: {', '.join(m.body.decode() for m in got)}")

    coaches = [await broker.consumer(topic, "coaches", n) for n in ("coach-a", "coach-b")]
    handled: list[str] = []
    while len(handled) < 6:
        for coach in coaches:
            batch = await coach.receive(max_messages=2, timeout=1.0)
            handled += [m.body.decode() for m in batch]
            await coach.ack(batch)
    print(f"coaches   : {len(handled)} handled, {len(set(handled))} distinct")
    for coach in coaches:
        await coach.close()

    crashing = await broker.consumer(topic, "coaches", "coach-c")
    await broker.publish(topic, b"entry-7")
    await broker.publish(topic, b"entry-8")
    batch = await crashing.receive(max_messages=2)
    await crashing.ack(batch[:1])
    await crashing.close()  # leaves holding entry-8, unacknowledged
    survivor = await broker.consumer(topic, "coaches", "coach-d")
    again = await survivor.receive(max_messages=2, timeout=5.0)
    await survivor.ack(again)
    await survivor.close()
    await reflection.close()
    print(f"crash     : acked {batch[0].body.decode()}, "
          f"redelivered {[(m.body.decode(), m.deliveries) for m in again]}")
    await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
