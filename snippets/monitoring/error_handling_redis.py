"""Dead letters on Redis Streams: a dead-letter stream fed from the pending entries list.

A consumer group reads ``coaching.entries``. An entry whose handler fails is
not acknowledged: it stays in the group's pending entries list, its error is
kept in a hash, and once idle for ``lease_ms`` any consumer of the group
claims it again with ``XAUTOCLAIM``, which raises its delivery count. An entry
delivered more than ``max_deliveries`` times, or one that fails with
:class:`PermanentError`, moves to the dead-letter stream
``coaching.entries:dead``: its original fields untouched, plus ``x-dead-*``
fields for the reason, the last error, the delivery count, the source entry
and how often it has died. The move (``XACK`` + ``XADD`` + ``HDEL``) runs in
one Lua script, so an entry is never both pending and dead, and it moves only
if ``XACK`` finds the entry still pending: when a handler outlives its lease,
another consumer claims the entry, and both give up on it, it is buried once.
An error is kept only while its entry is pending. The consumer that finds its
entry settled by another reports ``stolen``. Point it at your own Redis with
``REDIS_URL``.
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

# Bury an entry only if it is still pending: XACK answers 1 for exactly one caller.
BURY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""
# Keep an entry's last error only while it is pending: otherwise nothing would delete it.
NOTE_ERROR = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


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
        self._bury_script = client.register_script(BURY)
        self._note_error_script = client.register_script(NOTE_ERROR)

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
                info = await self.client.xpending_range(
                    self.stream, self.group, min=entry_id, max=entry_id, count=1)
                if not info:  # another consumer settled it since we claimed it
                    outcomes.append("stolen")
                    continue
                deliveries = info[0]["times_delivered"]
            if deliveries > self.max_deliveries:
                error = await self.client.hget(self.errors, entry_id) or "unknown"
                outcomes.append(await self._bury(entry_id, fields, "max_deliveries", error,
                                                 deliveries - 1))
                continue
            try:
                await handler(fields)
            except PermanentError as error:
                outcomes.append(await self._bury(entry_id, fields, "poison", _describe(error),
                                                 deliveries))
            except Exception as error:  # noqa: BLE001 - stays pending; claimed again later
                noted = await self._note_error_script(keys=[self.stream, self.errors],
                                                      args=[self.group, entry_id, _describe(error)])
                outcomes.append("retry" if noted else "stolen")
            else:
                async with self.client.pipeline(transaction=True) as tx:
                    await tx.xack(self.stream, self.group, entry_id).hdel(self.errors, entry_id).execute()
                outcomes.append("handled")
        return outcomes

    async def _bury(self, entry_id: str, fields: Fields, reason: str, error: str,
                    attempts: int) -> str:
        """Move the entry to the dead stream, atomically; ``stolen`` if it was not pending."""
        dead = dict(fields) | {
            "x-dead-reason": reason, "x-dead-error": error, "x-dead-attempts": str(attempts),
            "x-dead-source": f"{self.stream} {entry_id}", "x-dead-group": self.group,
            "x-dead-count": str(int(fields.get("x-dead-count", "0") or 0) + 1)}
        moved = await self._bury_script(keys=[self.stream, self.dead, self.errors],
                                        args=[self.group, entry_id,
                                              *[x for pair in dead.items() for x in pair]])
        return "dead" if moved else "stolen"
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
