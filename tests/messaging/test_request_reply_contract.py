"""One request-reply contract, run against the in-memory default, RabbitMQ and NATS.

Every test gets fresh service names, so tests sharing a session-wide server
never answer each other's requests.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import aio_pika
import pytest

from snippets.messaging import (
    request_reply_in_memory,
    request_reply_nats,
    request_reply_rabbitmq,
)
from tests.messaging.conftest import run

DEMO_OUTPUT = """\
mood-agent <- 'ran 5 km, felt great'
    b'mood 0.9'
mood-agent <- 'tired, skipped the run'
    RequestTimeout: no reply from 'mood-agent' to coach-2 within 0.2 s
mood-agent <- 'walked to work'
    RequestTimeout: no reply from 'mood-agent' to coach-3 within 0.2 s
late: [('coach-2', b'mood 0.3')]
mood-agent <- 'slept well'
    b'mood 0.7'
habits-agent <- 'walked'
    NoResponders: nobody serves 'habits-agent'
mood-agent <- ''
    RemoteError: mood-agent failed: ValueError: empty entry
handler got ['ran 5 km, felt great', 'tired, skipped the run', 'slept well', '']
duplicates 0, strays 0
"""


@dataclass
class Backend:
    """One implementation of the request-reply calls, and how to reach it."""

    name: str
    module: ModuleType
    url: str | None = None
    _memory: Any = None
    _opened: list[Any] = field(default_factory=list)

    async def connect(self) -> Any:
        """A broker connection (in memory: the same broker every time, as one network)."""
        if self.module is request_reply_in_memory:
            self._memory = self._memory or request_reply_in_memory.InMemoryBroker()
            return self._memory
        broker = await self.module.connect(self.url)
        self._opened.append(broker)
        return broker

    async def close_all(self) -> None:
        for broker in self._opened:
            await broker.close()

    async def send_raw(self, broker: Any, service: str, body: bytes) -> None:
        """A request with neither correlation id nor reply address."""
        if self.name == "memory":
            await broker.send(service, request_reply_in_memory.Envelope(body))
        elif self.name == "rabbitmq":
            channel = await broker.connection.channel()
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=service)
            await channel.close()
        else:
            await broker.client.publish(service, body)
            await broker.client.flush()


@pytest.fixture(params=["memory", "rabbitmq", "nats"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return Backend("memory", request_reply_in_memory)
    if request.param == "rabbitmq":
        return Backend("rabbitmq", request_reply_rabbitmq, request.getfixturevalue("rabbitmq_server").url)
    return Backend("nats", request_reply_nats, request.getfixturevalue("nats_server").url)


def service_name() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}"


def scenario(backend: Backend, body) -> Any:
    """Run ``body(backend)`` and close whatever it opened, with a hard deadline."""
    async def wrapped() -> Any:
        try:
            return await body(backend)
        finally:
            await backend.close_all()
    return run(wrapped(), timeout=60)


def test_the_demo_tells_the_same_story_on_every_backend(backend, capsys):
    async def body(b: Backend) -> None:
        await b.module.demo(await b.connect())

    scenario(backend, body)
    assert capsys.readouterr().out == DEMO_OUTPUT


def test_concurrent_requests_each_get_their_own_reply_whatever_order_the_replies_take(backend):
    service, n = service_name(), 12
    gates = {f"q{i}".encode(): asyncio.Event() for i in range(n)}
    arrived: list[bytes] = []

    async def echo(body: bytes) -> bytes:
        arrived.append(body)
        await gates[body].wait()
        return b"re:" + body

    async def body(b: Backend) -> list[bytes]:
        broker = await b.connect()
        responder = await broker.serve(service, echo, concurrency=n)
        requester = await (await b.connect()).requester()
        calls = [asyncio.create_task(requester.request(service, q, timeout=20)) for q in gates]
        await until(lambda: len(arrived) == n)
        for q in reversed(list(gates)):  # answer the last request first
            gates[q].set()
        replies = await asyncio.gather(*calls)
        await responder.stop()
        return replies

    assert scenario(backend, body) == [b"re:" + q for q in gates]


def test_a_late_reply_arriving_while_another_request_waits_is_dropped_not_mistaken(backend):
    service = service_name()
    gates = {b"first": asyncio.Event(), b"second": asyncio.Event()}
    started: list[bytes] = []

    async def slow(body: bytes) -> bytes:
        started.append(body)
        await gates[body].wait()
        return b"answer to " + body

    async def body(b: Backend) -> tuple[Any, ...]:
        responder = await (await b.connect()).serve(service, slow, concurrency=2)
        requester = await (await b.connect()).requester("coach")
        with pytest.raises(b.module.RequestTimeout, match="coach-1"):
            await requester.request(service, b"first", timeout=0.3)
        second = asyncio.create_task(requester.request(service, b"second", timeout=20))
        await until(lambda: started == [b"first", b"second"])
        gates[b"first"].set()  # the first answer arrives while the second request waits
        await until(lambda: requester.late)
        assert not second.done()
        gates[b"second"].set()
        answer = await second
        await responder.stop()
        return answer, list(requester.late), requester.correlator.strays

    answer, late, strays = scenario(backend, body)
    assert answer == b"answer to second"
    assert [(r.correlation_id, r.body) for r in late] == [("coach-1", b"answer to first")]
    assert strays == 0


def test_a_request_queued_past_its_timeout_is_never_handled(backend):
    service, release, seen = service_name(), asyncio.Event(), []

    async def handler(body: bytes) -> bytes:
        seen.append(body)
        if body == b"stall":
            await release.wait()
        return body

    async def body(b: Backend) -> bytes:
        responder = await (await b.connect()).serve(service, handler, concurrency=1)
        requester = await (await b.connect()).requester()
        for request in (b"stall", b"queued"):
            with pytest.raises(b.module.RequestTimeout):
                await requester.request(service, request, timeout=0.3)
        release.set()
        answer = await requester.request(service, b"after", timeout=20)
        await responder.stop()
        return answer

    assert scenario(backend, body) == b"after"
    assert seen == [b"stall", b"after"]


def test_a_request_to_a_service_nobody_serves_fails_fast_with_no_responders(backend):
    service = service_name()

    async def body(b: Backend) -> None:
        requester = await (await b.connect()).requester()
        with pytest.raises(b.module.NoResponders, match=f"nobody serves '{service}'"):
            await asyncio.wait_for(requester.request(service, b"hello", timeout=60), 20)

    scenario(backend, body)


def test_a_service_whose_last_responder_stopped_has_no_responders(backend):
    service = service_name()

    async def handler(body: bytes) -> bytes:
        return body

    async def body(b: Backend) -> None:
        broker = await b.connect()
        requester = await broker.requester()
        responder = await broker.serve(service, handler)
        assert await requester.request(service, b"ping", timeout=20) == b"ping"
        await responder.stop()
        with pytest.raises(b.module.NoResponders):
            await asyncio.wait_for(requester.request(service, b"ping", timeout=60), 20)

    scenario(backend, body)


def test_a_handler_error_comes_back_as_a_remote_error_and_the_service_carries_on(backend):
    service = service_name()

    async def handler(body: bytes) -> bytes:
        if body == b"boom":
            raise KeyError("no such goal")
        return body.upper()

    async def body(b: Backend) -> tuple[bytes, int, int]:
        responder = await (await b.connect()).serve(service, handler)
        requester = await (await b.connect()).requester()
        with pytest.raises(b.module.RemoteError, match=f"{service} failed: KeyError: 'no such goal'"):
            await requester.request(service, b"boom", timeout=20)
        answer = await requester.request(service, b"fine", timeout=20)
        await responder.stop()
        return answer, responder.failed, responder.handled

    assert scenario(backend, body) == (b"FINE", 1, 1)


def test_competing_responders_share_the_requests_and_each_is_answered_once(backend):
    service, working, both = service_name(), set(), asyncio.Event()

    def handler_for(name: str):
        async def handler(body: bytes) -> bytes:
            working.add(name)
            if len(working) == 2:
                both.set()
            await both.wait()  # never released unless both responders got work
            return name.encode() + b":" + body
        return handler

    async def body(b: Backend) -> list[bytes]:
        responders = [await (await b.connect()).serve(service, handler_for(n)) for n in "ab"]
        requester = await (await b.connect()).requester()
        replies = await asyncio.gather(*(requester.request(service, str(i).encode(), timeout=30)
                                         for i in range(20)))
        for responder in responders:
            await responder.stop()
        assert sum(r.handled for r in responders) == 20
        return replies

    replies = scenario(backend, body)
    assert sorted(int(r.split(b":")[1]) for r in replies) == list(range(20))
    assert {r.split(b":")[0] for r in replies} == {b"a", b"b"}
    assert requester_answered_in_order(replies)


def requester_answered_in_order(replies: list[bytes]) -> bool:
    """gather keeps call order: reply i answers request i."""
    return all(r.endswith(b":" + str(i).encode()) for i, r in enumerate(replies))


def test_a_malformed_request_is_dropped_and_the_service_carries_on(backend):
    service = service_name()

    async def handler(body: bytes) -> bytes:
        return body

    async def body(b: Backend) -> tuple[bytes, int]:
        broker = await b.connect()
        responder = await broker.serve(service, handler)
        await b.send_raw(broker, service, b"no reply address")
        await until(lambda: responder.malformed == 1)
        requester = await (await b.connect()).requester()
        answer = await requester.request(service, b"still here", timeout=20)
        await responder.stop()
        return answer, responder.handled

    assert scenario(backend, body) == (b"still here", 1)


def test_bad_input_is_refused_by_name_and_sends_nothing(backend):
    service, seen = service_name(), []

    async def handler(body: bytes) -> bytes:
        seen.append(body)
        return body

    async def body(b: Backend) -> None:
        broker = await b.connect()
        responder = await broker.serve(service, handler)
        requester = await broker.requester()
        with pytest.raises(TypeError, match="request body must be bytes, not str"):
            await requester.request(service, "text", timeout=1)
        with pytest.raises(ValueError, match="invalid service name 'Mood Agent'"):
            await requester.request("Mood Agent", b"x", timeout=1)
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
            await requester.request(service, b"x", timeout=0)
        with pytest.raises(ValueError, match="concurrency must be at least 1, got 0"):
            await broker.serve(service, handler, concurrency=0)
        assert await requester.request(service, b"ok", timeout=20) == b"ok"
        await responder.stop()

    scenario(backend, body)
    assert seen == [b"ok"]


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
