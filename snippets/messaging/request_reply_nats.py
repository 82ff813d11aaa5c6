"""Asynchronous request-reply on NATS: reply subjects, queue groups, no-responders.

Request-reply is built into NATS: a message can name a *reply subject*, and
a responder answers by publishing to it. Here each requester subscribes once
to a private wildcard inbox (``_INBOX.<unique>.*``) and gives every request
its own reply subject in it, ``_INBOX.<unique>.<correlation id>``: the reply
subject *is* the correlation. Unlike ``nc.request()``, which silently discards
a reply that arrives after its timeout, this requester recognises it as late.

Responders of one service join a queue group, so each request reaches one of
them. When no one subscribes to the subject, the server answers at once with
a 503 status ("no responders") and the request fails fast. Core NATS stores
nothing, so a request can only wait in a responder's buffer: it carries an
``Expires-At`` header (wall-clock seconds) and a responder that reaches it too
late skips it. Point it at your own server with ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
Handler = Callable[[bytes], Awaitable[bytes]]


class RequestTimeout(TimeoutError):
    """No reply came within the timeout; a reply arriving later will be dropped as late."""


class NoResponders(LookupError):
    """Nobody serves the address: the server answered with status 503."""


class RemoteError(RuntimeError):
    """The responder's handler raised; its error text came back instead of a reply."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the requester needs from a reply."""

    body: bytes
    correlation_id: str | None = None
    error: bool = False
    no_responders: bool = False


@dataclass(frozen=True, slots=True)
class LateReply:
    """A reply that arrived after its requester had given up."""

    correlation_id: str
    body: bytes


def check(service: str, body: bytes | None = None, timeout: float | None = None) -> None:
    """Refuse a malformed address, a non-bytes body or a timeout that is not positive."""
    if not isinstance(service, str) or not NAME.fullmatch(service):
        raise ValueError(f"invalid service name {service!r}: use dotted lowercase words like 'mood-agent'")
    if body is not None and not isinstance(body, bytes):
        raise TypeError(f"request body must be bytes, not {type(body).__name__}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


class Correlator:
    """Matches each reply to the request waiting for it (as in the in-memory module)."""

    def __init__(self, remember: int = 1024) -> None:
        self.remember = remember
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()
        self.late: deque[LateReply] = deque(maxlen=remember)
        self.duplicates = 0
        self.strays = 0

    def expect(self, correlation_id: str) -> asyncio.Future[Envelope]:
        if correlation_id in self._waiting or correlation_id in self._finished:
            raise ValueError(f"correlation id {correlation_id!r} was already used")
        future = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def finish(self, correlation_id: str, outcome: str) -> None:
        future = self._waiting.pop(correlation_id, None)
        if future is not None and not future.done():
            future.cancel()
        if outcome == "not sent":
            return
        self._finished[correlation_id] = outcome
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)

    def deliver(self, reply: Envelope) -> str:
        cid = reply.correlation_id
        future = self._waiting.pop(cid, None) if cid is not None else None
        if future is not None and not future.done():
            future.set_result(reply)
            self.finish(cid, "answered")
            return "matched"
        outcome = self._finished.get(cid) if cid is not None else None
        if outcome == "gave up":
            self.late.append(LateReply(cid, reply.body))
            log.warning("late reply to %s dropped: its requester had given up", cid)
            return "late"
        if outcome == "answered":
            self.duplicates += 1
            log.warning("duplicate reply to %s dropped", cid)
            return "duplicate"
        self.strays += 1
        log.warning("stray reply %r dropped: no request here has that id", cid)
        return "stray"


class NatsRequester:
    """Sends requests with reply subjects under one private wildcard inbox."""

    def __init__(self, client: Client, name: str) -> None:
        self.client, self.name = client, name
        self.prefix = client.new_inbox()  # _INBOX.<unique to this requester>
        self.correlator = Correlator()
        self._ids = itertools.count(1)
        self._subscription: Subscription | None = None

    @property
    def late(self) -> deque[LateReply]:
        return self.correlator.late

    async def _on_reply(self, msg: Msg) -> None:
        headers = msg.headers or {}
        cid = msg.subject[len(self.prefix) + 1:]
        self.correlator.deliver(Envelope(msg.data, cid, error="Error" in headers,
                                         no_responders=headers.get("Status") == "503"))

    # --8<-- [start:request]
    async def request(self, service: str, body: bytes, *, timeout: float = 5.0) -> bytes:
        """Publish ``body`` on subject ``service`` and return the reply's body.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            NoResponders: no subscriber on ``service`` (the server's 503).
            RemoteError: the responder's handler raised.
        """
        check(service, body, timeout)
        cid = f"{self.name}-{next(self._ids)}"
        waiting = self.correlator.expect(cid)
        deadline = {"Expires-At": f"{time.time() + timeout:.3f}"}
        outcome = "not sent"
        try:
            await self.client.publish(service, body, reply=f"{self.prefix}.{cid}", headers=deadline)
            outcome = "gave up"
            async with asyncio.timeout(timeout):
                reply = await waiting
            outcome = "answered"
        except TimeoutError:
            raise RequestTimeout(f"no reply from {service!r} to {cid} within {timeout} s") from None
        finally:
            if outcome != "answered":
                self.correlator.finish(cid, outcome)
        if reply.no_responders:
            raise NoResponders(f"nobody serves {service!r}")
        if reply.error:
            raise RemoteError(f"{service} failed: {reply.body.decode(errors='replace')}")
        return reply.body
    # --8<-- [end:request]


class NatsResponder:
    """A member of the service's queue group, ``concurrency`` requests at a time."""

    def __init__(self, client: Client, service: str, handler: Handler, concurrency: int) -> None:
        self.client, self.service, self.handler = client, service, handler
        self.handled = self.failed = self.expired = self.malformed = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    async def _on_request(self, msg: Msg) -> None:
        await self._slots.acquire()  # further requests wait in this client's buffer
        task = asyncio.create_task(self._answer(msg))
        self._running.add(task)
        task.add_done_callback(lambda t: (self._running.discard(t), self._slots.release()))

    # --8<-- [start:answer]
    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            self.malformed += 1
            log.warning("%s: request without a reply subject dropped", self.service)
            return
        try:
            expires_at = float((msg.headers or {}).get("Expires-At", "inf"))
        except ValueError:
            expires_at = float("inf")  # an unreadable deadline is no deadline
        if time.time() >= expires_at:
            self.expired += 1  # the requester has given up: the answer would only be late
            return
        try:
            body, headers = await self.handler(msg.data), None
            self.handled += 1
        except Exception as exc:  # noqa: BLE001 - the requester gets the error; we carry on
            body, headers = f"{type(exc).__name__}: {exc}".encode(), {"Error": "1"}
            self.failed += 1
        await self.client.publish(msg.reply, body, headers=headers)
    # --8<-- [end:answer]

    async def stop(self) -> None:
        """Leave the queue group, then let the requests in progress finish."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.client.flush()


class NatsBroker:
    """One connection for requesters and responders alike."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def requester(self, name: str | None = None) -> NatsRequester:
        """A requester with its own inbox; ``name`` prefixes its correlation ids."""
        name = name or uuid.uuid4().hex[:8]
        check(name)
        requester = NatsRequester(self.client, name)
        requester._subscription = await self.client.subscribe(f"{requester.prefix}.*",
                                                              cb=requester._on_reply)
        return requester

    async def serve(self, service: str, handler: Handler, *, concurrency: int = 1
                    ) -> NatsResponder:
        """Answer requests to ``service``; responders of one service form a queue group."""
        check(service)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        responder = NatsResponder(self.client, service, handler, concurrency)
        responder._subscription = await self.client.subscribe(service, queue=service,
                                                              cb=responder._on_request)
        await self.client.flush()  # the server knows the subscription before we return
        return responder

    async def close(self) -> None:
        await self.client.close()


async def connect(url: str | None = None) -> NatsBroker:
    """Connect to ``url`` (default ``NATS_URL``), or raise ``ConnectionError`` naming it."""
    url = url or os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

    async def quiet(error: Exception) -> None:  # the client reports each failed try here
        pass

    try:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=3,
                                    reconnect_time_wait=0.2, error_cb=quiet)
    except (nats.errors.NoServersError, OSError) as error:
        raise ConnectionError(f"cannot reach NATS at {url}: {error}") from error
    return NatsBroker(client)


MOODS = {"great": b"mood 0.9", "tired": b"mood 0.3", "walked": b"mood 0.6", "slept": b"mood 0.7"}


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` is true, for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def demo(broker: NatsBroker) -> None:
    """The scenario every backend prints: a reply, two timeouts, a late reply, errors."""
    release, seen = asyncio.Event(), []

    async def mood_agent(body: bytes) -> bytes:
        seen.append(body.decode())
        if not body:
            raise ValueError("empty entry")
        if b"tired" in body:
            await release.wait()  # the model is slow today
        return next(mood for word, mood in MOODS.items() if word.encode() in body)

    agent = await broker.serve("mood-agent", mood_agent, concurrency=1)
    coach = await broker.requester("coach")

    async def ask(service: str, text: str, timeout: float = 5.0) -> None:
        try:
            answer: object = await coach.request(service, text.encode(), timeout=timeout)
        except (RequestTimeout, NoResponders, RemoteError) as error:
            answer = f"{type(error).__name__}: {error}"
        print(f"{service} <- {text!r}\n    {answer}")

    await ask("mood-agent", "ran 5 km, felt great")
    await ask("mood-agent", "tired, skipped the run", timeout=0.2)  # handler stalls
    await ask("mood-agent", "walked to work", timeout=0.2)  # queued behind it
    release.set()
    await until(lambda: coach.late)
    print(f"late: {[(r.correlation_id, r.body) for r in coach.late]}")
    await ask("mood-agent", "slept well")  # gets its own reply, not a late one
    await ask("habits-agent", "walked")
    await ask("mood-agent", "")
    print(f"handler got {seen}")
    print(f"duplicates {coach.correlator.duplicates}, strays {coach.correlator.strays}")
    await agent.stop()


async def main() -> int:
    """Run the scenario against the NATS server at ``NATS_URL``."""
    try:
        broker = await connect()
    except ConnectionError as error:
        print(f"{error}\nSet NATS_URL to a NATS server you may use.", file=sys.stderr)
        return 1
    try:
        await demo(broker)
    finally:
        await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
