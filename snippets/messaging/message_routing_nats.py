"""Subject-based routing on NATS: ``*`` and ``>`` wildcards, and unroutable subjects.

NATS routes by subject with two wildcards: ``*`` is exactly one token and
``>`` is one or more tokens at the end. RabbitMQ's ``#`` (zero or more,
anywhere) has no direct equivalent: ``coaching.#`` also matches
``coaching`` itself, ``coaching.>`` does not. Core NATS drops a message that
no one subscribes to; publishing through JetStream instead fails when no
stream captures the subject, which makes an unknown subject an error.
Point it at your own server with ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NoStreamResponseError

MARKER = "_settle."


class Unroutable(LookupError):
    """No JetStream stream captures the subject: the message would be lost."""


def amqp_to_nats(pattern: str) -> str:
    """Translate a RabbitMQ topic pattern, refusing what NATS cannot express."""
    tokens = pattern.split(".")
    if "#" in tokens[:-1]:
        raise ValueError(f"{pattern!r}: NATS has no zero-or-more wildcard before the end")
    if tokens[-1] == "#":
        if len(tokens) == 1:
            return ">"
        tokens[-1] = ">"  # note: one or more tokens, where '#' also allowed zero
    return ".".join(tokens)


class NatsRouter:
    """Named subscribers on subject patterns; records what each one received."""

    def __init__(self, client: Client) -> None:
        self.client, self.js = client, client.jetstream()
        self.received: dict[str, list[str]] = defaultdict(list)
        self._subscriptions: list[Subscription] = []

    async def subscribe(self, name: str, pattern: str) -> None:
        """Subscribe ``name`` to ``pattern`` (``*``, ``>`` allowed)."""
        async def deliver(msg: Msg) -> None:
            if not msg.subject.startswith(MARKER):  # settle()'s own marker
                self.received[name].append(msg.subject)

        self._subscriptions.append(await self.client.subscribe(pattern, cb=deliver))

    async def publish(self, subject: str, body: bytes = b"") -> None:
        """Core NATS publish: fire and forget, dropped if nobody listens."""
        await self.client.publish(subject, body)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until everything published so far has reached every callback.

        NATS keeps one publisher's order on a subscription: once a marker sent
        last comes back, all earlier messages have arrived; then drain the
        callbacks' queues.
        """
        marker = f"{MARKER}{id(self)}"
        arrived = asyncio.Event()

        async def back(msg: Msg) -> None:
            arrived.set()

        sub = await self.client.subscribe(marker, cb=back)
        await self.client.publish(marker, b"")
        await asyncio.wait_for(arrived.wait(), timeout)
        await sub.unsubscribe()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s.pending_msgs for s in self._subscriptions) and loop.time() < deadline:
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the last callback taken off its queue finishes

    async def publish_durably(self, subject: str, body: bytes = b"") -> int:
        """JetStream publish: stored by the stream capturing ``subject``, or an error."""
        try:
            return (await self.js.publish(subject, body, timeout=2)).seq
        except (NoRespondersError, NoStreamResponseError) as error:
            raise Unroutable(f"no stream captures subject {subject!r}") from error

    async def close(self) -> None:
        await self.client.close()


async def connect(url: str | None = None) -> NatsRouter:
    """Connect to ``url`` (default ``NATS_URL``)."""
    url = url or os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    async def quiet(error: Exception) -> None:  # the client reports each failed try here
        pass

    try:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=3,
                                    reconnect_time_wait=0.2, error_cb=quiet)
    except (nats.errors.NoServersError, OSError) as error:
        raise ConnectionError(f"cannot reach NATS at {url}: {error}") from error
    return NatsRouter(client)


async def main() -> int:
    """The same bindings as the RabbitMQ demo, translated to NATS subjects."""
    try:
        router = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet NATS_URL to a NATS server with JetStream you may write to.", file=sys.stderr)
        return 1
    bindings = {"goal-coach": "coaching.goals.*", "mood-agent": "coaching.entries.*",
                "audit": "coaching.#"}
    for name, pattern in bindings.items():
        print(f"{pattern:<18} -> {amqp_to_nats(pattern)}")
        await router.subscribe(name, amqp_to_nats(pattern))
    for subject in ("coaching.entries.created", "coaching.goals.set", "coaching.goals.set.v2",
                    "coaching", "billing.invoice.paid"):
        await router.publish(subject)
    await router.settle()
    for name in sorted(bindings):
        print(f"{name:<10} got {router.received[name]}")

    stream = f"DIARY_{os.getpid()}"
    await router.js.add_stream(StreamConfig(name=stream, subjects=[f"diary{os.getpid()}.>"],
                                            storage=StorageType.MEMORY))
    await router.publish_durably(f"diary{os.getpid()}.entries.created")
    try:
        await router.publish_durably("billing.invoice.paid")
    except Unroutable as error:
        print(f"durable publish: {error}")
    await router.js.delete_stream(stream)
    await router.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
