"""Request-reply on a real NATS server: the demo, crashes, deadlines, a server that is down."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from snippets.messaging.request_reply_nats import RequestTimeout, connect, main
from tests.engines import free_port
from tests.messaging.conftest import run
from tests.messaging.test_request_reply_contract import DEMO_OUTPUT


def test_the_demo_prints_the_same_story_as_in_memory(nats_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == DEMO_OUTPUT


def test_a_request_in_the_hands_of_a_responder_that_dies_is_lost_and_a_retry_succeeds(nats_server):
    """Core NATS delivers at most once: nothing gives the request back. The requester's
    timeout is the only signal, and retrying reaches the surviving responder."""
    service, started = f"svc-{uuid.uuid4().hex[:8]}", asyncio.Event()

    async def stuck(body: bytes) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return body

    async def healthy(body: bytes) -> bytes:
        return b"answered by the survivor"

    async def scenario() -> bytes:
        doomed = await connect(nats_server.url)
        survivor, client = await connect(nats_server.url), await connect(nats_server.url)
        await doomed.serve(service, stuck)
        requester = await client.requester()
        call = asyncio.create_task(requester.request(service, b"entry", timeout=1.0))
        await started.wait()
        await survivor.serve(service, healthy)
        await doomed.client.close()  # the crash
        try:
            with pytest.raises(RequestTimeout):
                await call
            return await requester.request(service, b"entry", timeout=20)
        finally:
            await survivor.close()
            await client.close()

    assert run(scenario()) == b"answered by the survivor"


def test_an_unreadable_deadline_header_is_no_deadline(nats_server):
    service = f"svc-{uuid.uuid4().hex[:8]}"

    async def echo(body: bytes) -> bytes:
        return body

    async def scenario() -> bytes:
        broker = await connect(nats_server.url)
        try:
            await broker.serve(service, echo)
            inbox = broker.client.new_inbox()
            sub = await broker.client.subscribe(inbox)
            await broker.client.publish(service, b"hi", reply=inbox, headers={"Expires-At": "soon"})
            return (await sub.next_msg(timeout=10)).data
        finally:
            await broker.close()

    assert run(scenario()) == b"hi"


def test_a_server_that_is_down_is_named_in_the_error_and_the_demo_exits_1(monkeypatch, capsys):
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"cannot reach NATS at {url}"):
        run(connect(url), timeout=30)
    monkeypatch.setenv("NATS_URL", url)
    assert run(main(), timeout=30) == 1
    assert "Set NATS_URL" in capsys.readouterr().err
