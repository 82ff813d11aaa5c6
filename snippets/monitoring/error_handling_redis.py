"""Dead letters on Redis Streams: a dead-letter stream fed from the pending entries list.

A consumer group reads ``coaching.entries``. An entry whose handler fails is
not acknowledged: it stays in the group's pending entries list, its error is
kept in a hash, and once idle for ``lease_ms`` any consumer of the group
claims it again with ``XAUTOCLAIM``, which raises its delivery count. An entry
delivered more than ``max_deliveries`` times, or one that fails with
:class:`PermanentError`, moves to the dead-letter stream
``coaching.entries:dead``: its original fields untouched, plus ``x-dead-*``
fields for the reason, the last error, the delivery count, the source entry
and how often it has died. The move (``XADD`` + ``XACK`` + ``HDEL``) runs in
one ``MULTI`` transaction, so an entry is never both pending and dead.
Point it at your own Redis with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Fields = dict[str, str]


class PermanentError(Exception):
    """The entry can never succeed as it is: dead-letter it without further tries."""


class StreamConsumer:
    """One consumer of a group, with retries by redelivery and a dead-letter stream.

    Args:
        client: a ``redis.asyncio.Redis`` created with ``decode_responses=True``.
        max_deliveries: deliveries allowed before an entry is dead-lettered.
        lease_ms: how long a failed or abandoned entry stays with its consumer
            before the group may claim it again.
    """

    def __init__(self, client: redis.Redis, stream: str, group: str, name: str, *,
                 max_deliveries: int = 3, lease_ms: int = 30_000) -> None:
        self.client, self.stream, self.group, self.name = client, stream, group, name
        self.dead, self.errors = f"{stream}:dead", f"{stream}:errors"
        self.max_deliveries, self.lease_ms = max_deliveries, lease_ms

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream (idempotent)."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # --8<-- [start:poll]
    async def poll(self, handler: Callable[[Fields], Awaitable[None]], count: int = 10) -> list[str]:
        """Claim idle pending entries, read new ones, handle them; return the outcomes."""
        _, claimed, _ = await self.client.xautoclaim(
            self.stream, self.group, self.name, self.lease_ms, "0-0", count=count)
        fresh = await self.client.xreadgroup(self.group, self.name, {self.stream: ">"}, count=count)
        entries = [(i, f, None) for i, f in claimed if f is not None]
        entries += [(i, f, 1) for _, batch in fresh for i, f in batch]
        outcomes = []
        for entry_id, fields, deliveries in entries:
            if deliveries is None:  # claimed: ask the group how often it was delivered
                [info] = await self.client.xpending_range(
                    self.stream, self.group, min=entry_id, max=entry_id, count=1)
                deliveries = info["times_delivered"]
            if deliveries > self.max_deliveries:
                error = await self.client.hget(self.errors, entry_id) or "unknown"
                await self._bury(entry_id, fields, "max_deliveries", error, deliveries - 1)
                outcomes.append("dead")
                continue
            try:
                await handler(fields)
            except PermanentError as error:
                await self._bury(entry_id, fields, "poison", _describe(error), deliveries)
                outcomes.append("dead")
            except Exception as error:  # stays pending; claimed again after the lease
                await self.client.hset(self.errors, entry_id, _describe(error))
                outcomes.append("retry")
            else:
                async with self.client.pipeline(transaction=True) as tx:
                    await tx.xack(self.stream, self.group, entry_id).hdel(self.errors, entry_id).execute()
                outcomes.append("handled")
        return outcomes

    async def _bury(self, entry_id: str, fields: Fields, reason: str, error: str,
                    attempts: int) -> None:
        dead = dict(fields) | {
            "x-dead-reason": reason, "x-dead-error": error, "x-dead-attempts": str(attempts),
            "x-dead-source": f"{self.stream} {entry_id}", "x-dead-group": self.group,
            "x-dead-count": str(int(fields.get("x-dead-count", "0") or 0) + 1)}
        async with self.client.pipeline(transaction=True) as tx:  # MULTI ... EXEC
            tx.xadd(self.dead, dead).xack(self.stream, self.group, entry_id)
            await tx.hdel(self.errors, entry_id).execute()
    # --8<-- [end:poll]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


async def main() -> None:
    """Three journal entries: one fine, one the model never answers, one malformed."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as error:
        print(f"No Redis at {url}: set REDIS_URL ({error})", file=sys.stderr)
        await client.aclose()
        return
    stream = "demo.coaching.entries"
    await client.delete(stream, f"{stream}:dead", f"{stream}:errors")
    consumer = StreamConsumer(client, stream, "mood-agent", "worker-1", lease_ms=0)
    await consumer.ensure_group()
    for n, body in enumerate(['{"entry": 1}', '{"entry": 2}', "not json"], start=1):
        await client.xadd(stream, {"message_id": f"m-{n}", "correlation_id": f"req-{n}",
                                   "body": body})

    async def mood_agent(fields: Fields) -> None:
        if fields["body"] == "not json":
            raise PermanentError("body is not JSON")
        if fields["body"] == '{"entry": 2}':
            raise TimeoutError("model endpoint did not answer")

    for round_ in range(1, 6):
        print(f"poll {round_}: {await consumer.poll(mood_agent)}")
    for _, fields in await client.xrange(f"{stream}:dead"):
        shown = {k: v for k, v in fields.items() if k != "x-dead-source"}
        print(f"dead: {shown}")
    pending = await client.xpending(stream, "mood-agent")
    print(f"pending in the group: {pending['pending']}")
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
