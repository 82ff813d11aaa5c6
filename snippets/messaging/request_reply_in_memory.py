"""Asynchronous request-reply in memory: correlation id, reply-to, timeouts, late replies.

A requester sends a request to a *service* address with two headers: a
``correlation_id`` unique to this request and a ``reply_to`` address that is
its own private inbox. A responder handles the request and sends the answer
to ``reply_to`` with the same ``correlation_id``. The requester waits for
that id, and only for a bounded time.

When the time is up it gives up on the id and remembers that it did. A reply
that arrives later is recognised as *late* and dropped (logged and kept in
``late``), never handed to whoever is waiting now; a second reply to an
answered request is a *duplicate*; a reply with an id never sent here is a
*stray*. The request carries its deadline too, so a responder that reaches it
after the requester gave up skips it instead of doing work nobody waits for.

The same calls exist on RabbitMQ and NATS in this chapter; this one keeps
everything in one process, and is what the page runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
Handler = Callable[[bytes], Awaitable[bytes]]


class RequestTimeout(TimeoutError):
    """No reply came within the timeout; a reply arriving later will be dropped as late."""


class NoResponders(LookupError):
    """Nobody serves the address: fail now instead of waiting for the timeout."""


class RemoteError(RuntimeError):
    """The responder's handler raised; its error text came back instead of a reply."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message on the wire: the body and the headers request-reply needs."""

    body: bytes
    correlation_id: str | None = None
    reply_to: str | None = None
    expires_at: float | None = None  # event-loop time after which nobody waits
    error: bool = False


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


# --8<-- [start:correlator]
class Correlator:
    """Matches each reply to the request waiting for it, by correlation id.

    Ids of finished requests (answered or given up) are remembered, up to
    ``remember`` of them, so that a reply arriving after its requester gave up
    is told apart from a duplicate and from a stray.
    """

    def __init__(self, remember: int = 1024) -> None:
        self.remember = remember
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()  # id -> "answered" | "gave up"
        self.late: deque[LateReply] = deque(maxlen=remember)
        self.duplicates = 0
        self.strays = 0

    def expect(self, correlation_id: str) -> asyncio.Future[Envelope]:
        """Start waiting for ``correlation_id``."""
        if correlation_id in self._waiting or correlation_id in self._finished:
            raise ValueError(f"correlation id {correlation_id!r} was already used")
        future = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def finish(self, correlation_id: str, outcome: str) -> None:
        """Stop waiting: ``outcome`` is "answered", "gave up" or "not sent"."""
        future = self._waiting.pop(correlation_id, None)
        if future is not None and not future.done():
            future.cancel()
        if outcome == "not sent":
            return
        self._finished[correlation_id] = outcome
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)

    def deliver(self, reply: Envelope) -> str:
        """Hand ``reply`` to its request; return "matched", "late", "duplicate" or "stray"."""
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
# --8<-- [end:correlator]


class Requester:
    """Sends requests from its own inbox and waits for the matching replies."""

    def __init__(self, broker: InMemoryBroker, name: str) -> None:
        self.broker, self.name, self.inbox = broker, name, f"inbox.{name}"
        self.correlator = Correlator()
        self._ids = itertools.count(1)

    @property
    def late(self) -> deque[LateReply]:
        return self.correlator.late

    # --8<-- [start:request]
    async def request(self, service: str, body: bytes, *, timeout: float = 5.0) -> bytes:
        """Send ``body`` to ``service`` and return the reply's body.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            NoResponders: nobody serves ``service``.
            RemoteError: the responder's handler raised.
        """
        check(service, body, timeout)
        cid = f"{self.name}-{next(self._ids)}"
        waiting = self.correlator.expect(cid)
        expires_at = asyncio.get_running_loop().time() + timeout
        outcome = "not sent"
        try:
            await self.broker.send(service, Envelope(body, cid, self.inbox, expires_at))
            outcome = "gave up"
            async with asyncio.timeout(timeout):
                reply = await waiting
            outcome = "answered"
        except TimeoutError:
            raise RequestTimeout(f"no reply from {service!r} to {cid} within {timeout} s") from None
        finally:
            if outcome != "answered":  # timed out, cancelled, or never sent
                self.correlator.finish(cid, outcome)
        if reply.error:
            raise RemoteError(f"{service} failed: {reply.body.decode(errors='replace')}")
        return reply.body
    # --8<-- [end:request]


class Responder:
    """Handles requests for one service: ``concurrency`` at a time, competing with others."""

    def __init__(self, broker: InMemoryBroker, service: str, handler: Handler,
                 queue: asyncio.Queue[Envelope], concurrency: int) -> None:
        self.broker, self.service, self.handler = broker, service, handler
        self.handled = self.failed = self.expired = self.malformed = 0
        self._workers = [asyncio.create_task(self._work(queue)) for _ in range(concurrency)]

    async def _work(self, queue: asyncio.Queue[Envelope]) -> None:
        while True:
            await self._answer(await queue.get())

    # --8<-- [start:answer]
    async def _answer(self, request: Envelope) -> None:
        if not request.correlation_id or not request.reply_to:
            self.malformed += 1
            log.warning("%s: request without correlation_id or reply_to dropped", self.service)
            return
        if request.expires_at is not None and asyncio.get_running_loop().time() >= request.expires_at:
            self.expired += 1  # the requester has given up: the answer would only be late
            log.info("%s: skipped %s, its requester gave up", self.service, request.correlation_id)
            return
        try:
            body, error = await self.handler(request.body), False
            self.handled += 1
        except Exception as exc:  # noqa: BLE001 - the requester gets the error; we carry on
            body, error = f"{type(exc).__name__}: {exc}".encode(), True
            self.failed += 1
        await self.broker.reply(request.reply_to, Envelope(body, request.correlation_id, error=error))
    # --8<-- [end:answer]

    async def stop(self) -> None:
        """Stop answering; requests still queued for this service are left to the others."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self.broker._stopped(self.service)


class InMemoryBroker:
    """Service queues that responders compete on, and one inbox per requester."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Envelope]] = {}
        self._serving: dict[str, int] = {}
        self._inboxes: dict[str, Requester] = {}

    async def requester(self, name: str | None = None) -> Requester:
        """A requester with its own inbox; ``name`` prefixes its correlation ids."""
        name = name or uuid.uuid4().hex[:8]
        check(name)
        if f"inbox.{name}" in self._inboxes:
            raise ValueError(f"a requester named {name!r} already exists: its ids would collide")
        requester = Requester(self, name)
        self._inboxes[requester.inbox] = requester
        return requester

    async def serve(self, service: str, handler: Handler, *, concurrency: int = 1) -> Responder:
        """Answer requests to ``service`` with ``handler`` (bytes in, bytes out)."""
        check(service)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        queue = self._queues.setdefault(service, asyncio.Queue())
        self._serving[service] = self._serving.get(service, 0) + 1
        return Responder(self, service, handler, queue, concurrency)

    def _stopped(self, service: str) -> None:
        self._serving[service] -= 1
        if not self._serving[service]:  # like an auto-delete queue: nobody left to answer
            del self._serving[service], self._queues[service]

    async def send(self, service: str, request: Envelope) -> None:
        """Queue ``request`` for ``service``'s responders, or raise :class:`NoResponders`."""
        if not self._serving.get(service):
            raise NoResponders(f"nobody serves {service!r}")
        await self._queues[service].put(request)

    async def reply(self, address: str, reply: Envelope) -> None:
        """Deliver ``reply`` to the inbox at ``address`` (dropped if there is none)."""
        requester = self._inboxes.get(address)
        if requester is None:
            log.warning("reply to unknown inbox %r dropped", address)
            return
        requester.correlator.deliver(reply)

    async def close(self) -> None:
        """Nothing to release in memory (the engine versions close their connection)."""


MOODS = {"great": b"mood 0.9", "tired": b"mood 0.3", "walked": b"mood 0.6", "slept": b"mood 0.7"}


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` is true, for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def demo(broker: InMemoryBroker) -> None:
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


async def main() -> None:
    """Run the scenario in memory."""
    await demo(InMemoryBroker())


if __name__ == "__main__":
    asyncio.run(main())
