"""Request-reply on a real RabbitMQ: the demo, crashes, and a server that is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from snippets.messaging.request_reply_rabbitmq import (
    RequestTimeout,
    connect,
    main,
    until,
)
from tests.engines import free_port
from tests.messaging.conftest import run
from tests.messaging.test_request_reply_contract import DEMO_OUTPUT

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_prints_the_same_story_as_in_memory(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == DEMO_OUTPUT


def test_a_request_in_the_hands_of_a_responder_that_dies_is_answered_by_another(rabbitmq_server):
    """The request is acknowledged only after the reply: a responder whose connection
    dies mid-request gives it back, and RabbitMQ redelivers it (at least once)."""
    service, started = f"svc-{uuid.uuid4().hex[:8]}", asyncio.Event()

    async def stuck(body: bytes) -> bytes:
        started.set()
        await asyncio.Event().wait()  # never answers
        return body

    async def healthy(body: bytes) -> bytes:
        return b"answered by the survivor"

    async def scenario() -> bytes:
        doomed = await connect(rabbitmq_server.url)
        survivor, client = await connect(rabbitmq_server.url), await connect(rabbitmq_server.url)
        await doomed.serve(service, stuck)
        requester = await client.requester()
        call = asyncio.create_task(requester.request(service, b"entry", timeout=30))
        await started.wait()
        await survivor.serve(service, healthy)  # keeps the auto-delete queue alive
        await doomed.close()  # the crash: unacknowledged request goes back to the queue
        try:
            return await call
        finally:
            await survivor.close()
            await client.close()

    assert run(scenario()) == b"answered by the survivor"


def test_a_reply_to_a_requester_that_has_gone_is_lost_and_the_service_carries_on(rabbitmq_server):
    service, started, release = f"svc-{uuid.uuid4().hex[:8]}", asyncio.Event(), asyncio.Event()

    async def slow(body: bytes) -> bytes:
        if body == b"first":
            started.set()
            await release.wait()
        return body

    async def scenario() -> bytes:
        server, gone, client = [await connect(rabbitmq_server.url) for _ in range(3)]
        responder = await server.serve(service, slow, concurrency=2)
        leaving = await gone.requester()
        call = asyncio.create_task(leaving.request(service, b"first", timeout=30))
        await started.wait()
        call.cancel()
        await gone.close()
        release.set()  # its reply goes to a reply-to address nobody consumes any more
        requester = await client.requester()
        try:
            answer = await requester.request(service, b"second", timeout=20)
            async with asyncio.timeout(10):
                while responder.handled < 2:
                    await asyncio.sleep(0.01)
            return answer
        finally:
            await server.close()
            await client.close()

    assert run(scenario()) == b"second"


def test_the_timeout_error_names_the_service_and_the_request(rabbitmq_server):
    service = f"svc-{uuid.uuid4().hex[:8]}"

    async def never(body: bytes) -> bytes:
        await asyncio.Event().wait()
        return body

    async def scenario() -> None:
        broker = await connect(rabbitmq_server.url)
        try:
            await broker.serve(service, never)
            coach = await broker.requester("coach")
            with pytest.raises(RequestTimeout, match=f"'{service}' to coach-1 within 0.2 s"):
                await coach.request(service, b"x", timeout=0.2)
        finally:
            await broker.close()

    run(scenario())


def test_a_server_that_is_down_is_named_in_the_error_and_the_demo_exits_1(monkeypatch, capsys):
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with pytest.raises(ConnectionError, match=f"cannot reach RabbitMQ at {url} after 2 attempts"):
        run(connect(url, attempts=2), timeout=30)
    monkeypatch.setenv("AMQP_URL", url)
    assert run(main(), timeout=30) == 1
    assert "Set AMQP_URL" in capsys.readouterr().err


KILLED_BETWEEN_REPLY_AND_ACK = """
    import asyncio, os, signal, sys
    from aio_pika.message import IncomingMessage
    from snippets.messaging.request_reply_rabbitmq import connect

    url, service = sys.argv[1:]

    async def die(self, multiple=False):
        os.kill(os.getpid(), signal.SIGKILL)  # the reply has left; the ack never will

    IncomingMessage.ack = die

    async def main():
        broker = await connect(url)

        async def answer(body):
            print("handling", flush=True)
            await asyncio.to_thread(sys.stdin.readline)  # until the test says go
            return b"answered by the one that died"

        await broker.serve(service, answer)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
"""


def test_a_responder_killed_between_its_reply_and_its_ack_answers_twice_and_one_is_dropped(
        rabbitmq_server):
    """The responder process publishes its reply and is SIGKILLed before the ack: RabbitMQ
    redelivers the request, a second responder answers it again. The requester keeps the
    first reply and drops the second as a duplicate (at least once, never mismatched)."""
    service = f"svc-{uuid.uuid4().hex[:8]}"
    doomed = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_BETWEEN_REPLY_AND_ACK),
         rabbitmq_server.url, service], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen: list[bytes] = []

    async def again(body: bytes) -> bytes:
        seen.append(body)
        return b"answered again by the survivor"

    async def scenario():
        line = await asyncio.to_thread(doomed.stdout.readline)
        assert line == "ready\n"
        survivor, client = await connect(rabbitmq_server.url), await connect(rabbitmq_server.url)
        requester = await client.requester()
        call = asyncio.create_task(requester.request(service, b"entry", timeout=30))
        assert await asyncio.to_thread(doomed.stdout.readline) == "handling\n"
        await survivor.serve(service, again)  # keeps the auto-delete queue alive
        doomed.stdin.write("go\n")
        doomed.stdin.flush()
        answer = await call
        await until(lambda: requester.correlator.duplicates == 1, timeout=30)
        await survivor.close()
        await client.close()
        return answer, requester.correlator.duplicates, requester.correlator.strays

    try:
        answer, duplicates, strays = run(scenario(), timeout=90)
        code = doomed.wait(30)
    finally:
        if doomed.poll() is None:  # only if the test failed before the process died
            doomed.kill()
            doomed.wait(10)
    assert code == -signal.SIGKILL
    assert answer == b"answered by the one that died"
    assert (duplicates, strays) == (1, 0)
    assert seen == [b"entry"]  # the request was redelivered: handled twice in all
