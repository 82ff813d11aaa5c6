"""Filtering at the broker vs in the consumer, measured on a real NATS server.

The journal publishes entries on subjects that carry the attributes worth
filtering on: ``coaching.entries.<language>.<mood>``. A subscription to
``coaching.entries.fr.*`` lets the server drop everything else before it
crosses the network; a subscription to ``coaching.entries.>`` with an ``if``
in the handler receives, decodes and throws away two thirds of the traffic.
A JetStream consumer with a ``filter_subject`` does the same on a stored
stream. What the subject does not carry (the number of words) can only be
filtered in the consumer.

Needs a NATS server with JetStream: set ``NATS_URL`` (default
``nats://127.0.0.1:4222``). The site does not run this at build time; the
test suite runs it against a private server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import nats
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

LANGUAGES, MOODS = ("en", "fr", "de"), ("low", "ok", "good")


@dataclass
class Tally:
    """What one subscription received over the wire and what it kept."""

    name: str
    filtered_by: str
    expected: int
    keep: Callable[[str, dict], bool] = lambda subject, data: True
    received: int = 0
    kept: int = 0
    bytes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def take(self, msg: Msg) -> None:
        """The subscription's callback: count the message, then filter it (or not)."""
        self.received += 1
        self.bytes += len(msg.data)
        self.kept += self.keep(msg.subject, json.loads(msg.data))
        if self.received >= self.expected:
            self.done.set()


def journal(count: int) -> list[tuple[str, bytes]]:
    """``count`` entries spread evenly over languages and moods, deterministic."""
    entries = []
    for n in range(count):
        language, mood = LANGUAGES[n % 3], MOODS[(n // 3) % 3]
        body = json.dumps({"entry": f"e-{n}", "words": 40 + (n * 37) % 400}).encode()
        entries.append((f"coaching.entries.{language}.{mood}", body))
    return entries


# --8<-- [start:subscriptions]
async def compare(url: str, count: int = 540) -> list[Tally]:
    """Publish ``count`` entries and let four subscriptions filter them their way."""
    entries = journal(count)
    french = sum(1 for subject, _ in entries if subject.split(".")[2] == "fr")
    low = sum(1 for subject, _ in entries if subject.endswith(".low"))
    tallies = [
        Tally("coaching.entries.fr.*", "broker", french),
        Tally("coaching.entries.> + if", "consumer", count,
              keep=lambda subject, data: subject.split(".")[2] == "fr"),
        Tally("coaching.entries.*.low", "broker", low),
        Tally("coaching.entries.> + words>=200", "consumer", count,
              keep=lambda subject, data: data["words"] >= 200),
    ]
    nc = await nats.connect(url)
    try:
        for tally in tallies:
            await nc.subscribe(tally.name.split(" ")[0], cb=tally.take)
        js = nc.jetstream()
        await js.add_stream(name="ENTRIES", subjects=["coaching.entries.>"])
        for subject, body in entries:
            await nc.publish(subject, body)
        await nc.flush()
        await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in tallies)), timeout=30)

        stored = Tally("JetStream filter_subject fr.*", "broker", french)
        pull = await js.pull_subscribe("coaching.entries.fr.*", durable="french",
                                       stream="ENTRIES", config=ConsumerConfig(ack_wait=30))
        while stored.received < stored.expected:
            for msg in await pull.fetch(batch=100, timeout=10):
                await stored.take(msg)
                await msg.ack()
        tallies.append(stored)
        await js.delete_stream("ENTRIES")
    finally:
        await nc.drain()
    return tallies
# --8<-- [end:subscriptions]


async def reachable(url: str) -> bool:
    """Is anything listening at ``url``? (nats-py would keep retrying forever.)"""
    address = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address.hostname, address.port or 4222), timeout=2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def main() -> int:
    """Compare the subscriptions on the server named by NATS_URL; 1 if there is none."""
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    if not await reachable(url):
        print(f"no NATS server at {url}: start one with `nats-server -js` or set NATS_URL",
              file=sys.stderr)
        return 1
    tallies = await compare(url)
    print(f"{'subscription':<34}{'filtered by':<13}{'received':>9}{'kept':>6}{'bytes in':>10}")
    for t in tallies:
        print(f"{t.name:<34}{t.filtered_by:<13}{t.received:>9}{t.kept:>6}{t.bytes:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
