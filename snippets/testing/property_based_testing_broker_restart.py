"""Fault injection on a real broker: a fault in mid-stream, and nothing may be lost.

A Redis Streams consumer group delivers journal entries to a consumer. The
test publishes ten entries, lets the consumer take a batch of five and crash
after handling three, injects a fault into Redis, publishes ten more, starts
the consumer again and lets it catch up. The property: every entry published
was handled at least once. Redelivered entries are fine (they are counted);
lost ones fail the test, by name.

The fault is a parameter. The test suite passes a real restart of
``redis-server`` with its append-only file (AOF); a pasted copy of this
module cannot restart your Redis, so ``main()`` injects the nearest thing a
client can: ``CLIENT KILL`` drops every connection, as a restart does, but
keeps the data. The deliberately broken consumer acknowledges entries when it
receives them instead of after handling them, so the two it held when it
crashed are gone. Point it at a Redis you may write to with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Entry = tuple[str, dict[str, str]]


class Crash(Exception):
    """The consumer process died here."""


def connect(url: str) -> redis.Redis:
    """A client that retries through a broker outage of up to about ten seconds."""
    return redis.from_url(url, decode_responses=True,
                          retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=25))


# --8<-- [start:consumers]
class AckAfterHandling:
    """Handles an entry, then acknowledges it; on start, first re-reads its own pending ones."""

    def __init__(self, client: redis.Redis, stream: str, handled: list[str],
                 group: str = "reflection", name: str = "worker-1") -> None:
        self.client, self.stream, self.handled = client, stream, handled
        self.group, self.name, self.redelivered = group, name, 0

    async def join_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def receive(self, count: int, pending: bool = False) -> list[Entry]:
        """New entries (``>``), or with ``pending`` the ones delivered here but not acked."""
        reply = await self.client.xreadgroup(self.group, self.name,
                                             {self.stream: "0" if pending else ">"}, count=count)
        return [entry for _, entries in reply for entry in entries if entry[1]]

    async def handle(self, entry: Entry) -> None:
        self.handled.append(entry[1]["entry_id"])
        await self.client.xack(self.stream, self.group, entry[0])

    async def poll(self, count: int, crash_after: int | None = None) -> None:
        for n, entry in enumerate(await self.receive(count)):
            if n == crash_after:
                raise Crash(f"after handling {n} entries")
            await self.handle(entry)

    async def catch_up(self, count: int = 10) -> None:
        """Pending entries first, then new ones, until there are none of either."""
        while True:
            batch = await self.receive(count, pending=True)
            self.redelivered += len(batch)
            batch = batch or await self.receive(count)
            if not batch:
                return
            for entry in batch:
                await self.handle(entry)


class AckOnReceipt(AckAfterHandling):
    """Deliberately broken: acknowledges a batch as soon as it arrives."""

    async def receive(self, count: int, pending: bool = False) -> list[Entry]:
        entries = await super().receive(count, pending)
        if entries:
            await self.client.xack(self.stream, self.group, *(e[0] for e in entries))
        return entries

    async def handle(self, entry: Entry) -> None:
        self.handled.append(entry[1]["entry_id"])
# --8<-- [end:consumers]


async def drop_every_connection(url: str) -> None:
    """The fault ``main()`` injects: the server closes every client connection but its own."""
    killer = redis.from_url(url)
    await killer.client_kill_filter(_type="normal", skipme=True)
    await killer.aclose()


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Let pytest call an async test; no test may take over 60 s."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=60))

    return run


# --8<-- [start:test]
@synchronous
async def test_a_fault_in_mid_stream_loses_no_entry(consumer=AckAfterHandling, fault=None,
                                                    report=None):
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    fault = fault or functools.partial(drop_every_connection, url)
    client, stream, handled = connect(url), "journal.entries", []
    await client.delete(stream)
    published = [f"entry-{n:04d}" for n in range(1, 21)]

    async def publish(entry_ids: list[str]) -> None:
        for entry_id in entry_ids:
            await client.xadd(stream, {"entry_id": entry_id})

    first = consumer(client, stream, handled)
    await first.join_group()
    await publish(published[:10])
    try:
        await first.poll(5, crash_after=3)        # holds entries 4 and 5, unacknowledged
    except Crash:
        pass                                      # the process is gone; its pending list is not
    await fault()                                 # the broker restarts (or drops every client)
    await publish(published[10:])                 # the client reconnects, retrying
    second = consumer(client, stream, handled)    # a new process, same consumer name
    await second.join_group()
    await second.catch_up()
    await client.aclose()

    lost = [entry_id for entry_id in published if entry_id not in handled]
    if report is not None:
        report.update(handled=len(set(handled)), redelivered=second.redelivered)
    assert not lost, f"lost {', '.join(lost)}"
# --8<-- [end:test]


def main() -> int:
    print("fault: every client connection dropped (CLIENT KILL), 2 entries in flight")
    for consumer in (AckAfterHandling, AckOnReceipt):
        report: dict[str, int] = {}
        try:
            test_a_fault_in_mid_stream_loses_no_entry(consumer, report=report)
            outcome = "nothing lost"
        except AssertionError as failure:
            outcome = f"caught: {failure}"
        except (OSError, RedisConnectionError) as error:
            print(f"cannot reach Redis: {error}\nSet REDIS_URL to a Redis you may write to.",
                  file=sys.stderr)
            return 1
        print(f"{consumer.__name__}: {report['handled']} of 20 handled, "
              f"{report['redelivered']} redelivered, {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
