"""Trimming Redis Streams: ``XADD ... MAXLEN``, ``XTRIM MINID``, and consumer groups.

A stream grows until it is trimmed. ``MAXLEN`` keeps the newest N entries;
``MINID`` drops every entry whose id is lower, and since an id starts with
its millisecond timestamp, ``MINID`` is how a stream keeps "the last 7 days".
``~`` (approximate) lets Redis trim only whole internal nodes (100 entries
by default), which is far cheaper and keeps a little more than asked.
Trimming does not look at consumer groups: a group that has not read an
entry yet skips it, and an entry that was read but not acknowledged stays in
the group's pending list as a dangling id that ``XAUTOCLAIM`` reports as
deleted. Point it at your own Redis with ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError


# --8<-- [start:trim]
async def append(client: redis.Redis, stream: str, body: bytes, *, maxlen: int,
                 exact: bool = False, entry_id: str = "*") -> str:
    """XADD with a length cap: ``MAXLEN ~ maxlen`` (or ``=`` when ``exact``)."""
    return (await client.xadd(stream, {"body": body}, id=entry_id, maxlen=maxlen,
                              approximate=not exact)).decode()


async def trim_older_than(client: redis.Redis, stream: str, now_ms: int, max_age_ms: int) -> int:
    """XTRIM MINID: drop entries whose id (a millisecond timestamp) is older than the age."""
    if max_age_ms < 0:
        raise ValueError(f"max_age_ms must be >= 0, not {max_age_ms}")
    return await client.xtrim(stream, minid=f"{now_ms - max_age_ms}-0", approximate=False)
# --8<-- [end:trim]


async def replay(client: redis.Redis, stream: str) -> list[str]:
    """Everything still in the stream, from the start: what a new reader would see."""
    return [entry_id.decode() for entry_id, _ in await client.xrange(stream)]


async def connect(url: str | None = None) -> redis.Redis:
    """Connect to ``url`` (default ``REDIS_URL``) or raise ``ConnectionError`` saying where."""
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as error:
        await client.aclose()
        raise ConnectionError(f"cannot reach Redis at {url}: {error}") from error
    return client


async def main() -> int:
    """Exact and approximate MAXLEN, MINID by age, and a group left behind by a trim."""
    try:
        client = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet REDIS_URL to a Redis you may write to.", file=sys.stderr)
        return 1
    stream = "coaching.entries.retention"
    await client.delete(stream)  # a clean demo on a reused server
    for n in range(1, 13):
        await append(client, stream, f"entry-{n}".encode(), maxlen=5, exact=True,
                     entry_id=f"{n * 1000}-0")  # one entry a second, ids set for the demo
    kept = await replay(client, stream)
    print(f"MAXLEN = 5  : 12 added, {len(kept)} kept: {kept[0]} ... {kept[-1]}")

    await client.delete(stream)
    for n in range(1, 251):
        await append(client, stream, b"entry", maxlen=100)
    print(f"MAXLEN ~ 100: 250 added, {await client.xlen(stream)} kept (whole nodes only)")

    await client.delete(stream)
    for n in range(1, 13):
        await client.xadd(stream, {"body": f"entry-{n}".encode()}, id=f"{n * 1000}-0")
    dropped = await trim_older_than(client, stream, now_ms=12_000, max_age_ms=5_000)
    kept = await replay(client, stream)
    print(f"MINID       : now 12 s, keep 5 s: {dropped} dropped, {len(kept)} kept: "
          f"{kept[0]} ... {kept[-1]}")

    await client.delete(stream)
    await client.xgroup_create(stream, "coaches", id="0", mkstream=True)
    for n in range(1, 7):
        await client.xadd(stream, {"body": f"entry-{n}".encode()}, id=f"{n * 1000}-0")
    await client.xreadgroup("coaches", "coach-a", {stream: ">"}, count=2)  # read, not acked
    await client.xtrim(stream, maxlen=2, approximate=False)
    pending = (await client.xpending(stream, "coaches"))["pending"]
    _, claimed, deleted = await client.xautoclaim(stream, "coaches", "coach-b", 0)
    rest = await client.xreadgroup("coaches", "coach-b", {stream: ">"}, count=10)
    print(f"group       : {pending} pending after the trim; XAUTOCLAIM claims {len(claimed)}")
    print(f"{'':14}and reports deleted {[i.decode() for i in deleted]}")
    print(f"{'':14}XREADGROUP goes on at {rest[0][1][0][0].decode()}: "
          "3000-0 and 4000-0 were never read")
    await client.delete(stream)
    await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
