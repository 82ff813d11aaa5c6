"""The RabbitMQ -> JetStream bridge against real servers: killed with SIGKILL at each step
and restarted, a duplicate window that has passed, a message without an id, and a NATS
server that goes away mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import urllib.parse
import uuid
from pathlib import Path

import aio_pika
import nats
import pytest

from snippets.messaging.messaging_bridge_rabbitmq_nats import (
    Bridge,
    BridgeStalled,
    declare_source,
    declare_target,
    main,
    read_stream,
)
from tests.engines import free_port
from tests.messaging.conftest import run

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "docs" / "data" / "outputs" / "messaging" / "messaging_bridge_rabbitmq_nats.txt"
IDS = [f"entry-{n}" for n in range(1, 6)]


class Names:
    """Fresh queue, stream and subject names for one test on the shared servers."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.queue, self.stream, self.subject = f"bridge.{tag}", f"BRIDGE_{tag}", f"bridge.{tag}"


async def prepare(amqp_url: str, js, names: Names, window: float = 120.0) -> None:
    """Declare the source queue and the target stream, and put five entries in the queue."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await declare_source(channel, names.queue)
    await declare_target(js, names.stream, names.subject, duplicate_window=window)
    for msg_id in IDS:
        await channel.default_exchange.publish(
            aio_pika.Message(msg_id.encode(), message_id=msg_id,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=names.queue)
    await connection.close()


async def bridge_until_idle(amqp_url: str, js, names: Names, **options) -> Bridge:
    """A (re)started bridge, run until the queue has been empty for a second."""
    connection = await aio_pika.connect(amqp_url)
    bridge = Bridge(await connection.channel(), names.queue, js, names.subject, **options)
    try:
        await bridge.run(idle=1)
    finally:
        await connection.close()
    return bridge


def test_the_demo_prints_what_the_page_shows(rabbitmq_server, nats_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    monkeypatch.setenv("NATS_URL", nats_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == RECORDED.read_text()


KILLED = """
    import asyncio, os, signal, sys
    import aio_pika, nats
    from snippets.messaging.messaging_bridge_rabbitmq_nats import Bridge

    amqp_url, nats_url, queue, subject, step, victim = sys.argv[1:]

    async def main():
        rabbit = await aio_pika.connect(amqp_url)
        client = await nats.connect(nats_url)

        async def die(current, msg_id):
            if (current, msg_id) == (step, victim):
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no goodbye

        bridge = Bridge(await rabbit.channel(), queue, client.jetstream(), subject, on_step=die)
        await bridge.run(idle=10)

    asyncio.run(main())
"""


@pytest.mark.parametrize("step", ["consumed", "published", "acked"])
def test_a_bridge_killed_at_any_step_and_restarted_loses_nothing_and_duplicates_nothing(
        rabbitmq_server, nats_server, step):
    names = Names()

    async def before():
        client = await nats.connect(nats_server.url)
        await prepare(rabbitmq_server.url, client.jetstream(), names)
        await client.close()

    async def after():
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        bridge = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        await client.close()
        return bridge, stored

    run(before())
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED), rabbitmq_server.url, nats_server.url,
         names.queue, names.subject, step, "entry-3"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL
    bridge, stored = run(after())
    assert [msg_id for msg_id, _ in stored] == IDS  # each once, in order, none lost
    assert [body for _, body in stored] == [i.encode() for i in IDS]
    if step == "consumed":
        assert (bridge.relayed, bridge.duplicates) == (3, 0)  # entry-3 was never published
    elif step == "published":
        assert (bridge.relayed, bridge.duplicates) == (3, 1)  # published again, dropped
    else:  # the ack may or may not have left the dying process: both are safe
        assert (bridge.relayed, bridge.duplicates) in {(2, 0), (3, 1)}


def test_after_the_duplicate_window_a_redelivery_is_visible_and_the_consumer_must_dedupe(
        rabbitmq_server, nats_server):
    names = Names()

    class Killed(Exception):
        pass

    async def die_after_publishing_entry_3(step: str, msg_id: str) -> None:
        if (step, msg_id) == ("published", "entry-3"):
            raise Killed

    async def scenario():
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        await prepare(rabbitmq_server.url, js, names, window=0.3)
        with pytest.raises(Killed):
            await bridge_until_idle(rabbitmq_server.url, js, names,
                                    on_step=die_after_publishing_entry_3)
        await asyncio.sleep(0.5)  # the bridge stays down longer than the 0.3 s window
        bridge = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        await client.close()
        return bridge, stored

    bridge, stored = run(scenario())
    ids = [msg_id for msg_id, _ in stored]
    assert ids == ["entry-1", "entry-2", "entry-3", "entry-3", "entry-4", "entry-5"]
    assert bridge.duplicates == 0  # JetStream no longer remembered entry-3
    applied: list[str] = []
    for msg_id in ids:  # the idempotent consumer: the id is in every message's headers
        if msg_id not in applied:
            applied.append(msg_id)
    assert applied == IDS


def test_a_message_without_an_id_is_rejected_to_dead_letters_and_the_rest_flow(
        rabbitmq_server, nats_server):
    names = Names()
    no_properties = "{'P_basic'" + ", undefined" * 3 + ", 2" + ", undefined" * 10 + "}"

    async def scenario():
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        await prepare(rabbitmq_server.url, js, names)
        # A client that sets no message_id (aio-pika always sets one): published from
        # inside the broker, as pika or the Java client would send it by default.
        # Into this session's virtual host: "/" on a node of its own, another one on a
        # node shared by several sessions (make mutate).
        vhost = urllib.parse.unquote(rabbitmq_server.url.rsplit("/", 1)[1]) or "/"
        rabbitmq_server.ctl("eval", f'rabbit_basic:publish(rabbit_misc:r(<<"{vhost}">>, '
                            f'exchange, <<"">>), <<"{names.queue}">>, {no_properties}, '
                            f'<<"no id">>).')
        bridge = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        connection = await aio_pika.connect(rabbitmq_server.url)
        rejected = await (await connection.channel()).get_queue(f"{names.queue}.rejected")
        letter = await rejected.get(timeout=5)
        await letter.ack()
        await connection.close()
        await client.close()
        return bridge, stored, letter

    bridge, stored, letter = run(scenario())
    assert [msg_id for msg_id, _ in stored] == IDS
    assert bridge.rejected == 1 and letter.body == b"no id"
    assert letter.headers["x-death"][0]["reason"] == "rejected"


def test_a_nats_server_that_goes_away_stalls_the_bridge_and_loses_nothing(
        rabbitmq_server, nats_factory):
    engine = nats_factory()
    names = Names()

    async def scenario():
        client = await nats.connect(engine.url, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.1)
        js = client.jetstream()
        await prepare(rabbitmq_server.url, js, names)

        async def stop_nats_after_entry_2(step: str, msg_id: str) -> None:
            if (step, msg_id) == ("acked", "entry-2"):
                await asyncio.to_thread(engine.stop)

        with pytest.raises(BridgeStalled, match="did not confirm entry-3 after 2 attempts"):
            await bridge_until_idle(rabbitmq_server.url, js, names, retries=2,
                                    publish_timeout=0.5, on_step=stop_nats_after_entry_2)
        connection = await aio_pika.connect(rabbitmq_server.url)
        waiting = await (await connection.channel()).declare_queue(names.queue, passive=True)
        await connection.close()
        await asyncio.to_thread(engine.start)  # the file store keeps the stream
        bridge = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        await client.close()
        return waiting.declaration_result.message_count, bridge, stored

    waiting, bridge, stored = run(scenario())
    assert waiting == 3  # entry-3 was put back; nothing was acknowledged without a PubAck
    assert [msg_id for msg_id, _ in stored] == IDS
    assert bridge.relayed == 3


def test_a_bridge_that_stops_after_a_batch_hands_back_what_it_prefetched(
        rabbitmq_server, nats_server):
    names = Names()

    async def scenario():
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        await prepare(rabbitmq_server.url, js, names)
        connection = await aio_pika.connect(rabbitmq_server.url)
        channel = await connection.channel()
        batch = Bridge(channel, names.queue, js, names.subject)
        await batch.run(limit=2)  # the other three were pushed to it already
        waiting = await channel.declare_queue(names.queue, passive=True)
        await connection.close()
        rest = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        await client.close()
        return batch.relayed, waiting.declaration_result.message_count, rest, stored

    relayed, waiting, rest, stored = run(scenario())
    assert (relayed, waiting) == (2, 3)  # handed back at once, not when the channel closed
    assert (rest.relayed, rest.duplicates) == (3, 0)
    assert [msg_id for msg_id, _ in stored] == IDS


def test_without_its_servers_the_demo_says_which_variables_to_set_and_exits_1(
        monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/")
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{port}")
    assert run(main(), timeout=30) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "Set AMQP_URL and NATS_URL" in err


def test_a_nats_server_killed_right_after_its_puback_still_has_the_message_after_restart(
        rabbitmq_server, nats_factory):
    """JetStream confirms entry-3, the bridge acks it on RabbitMQ (so RabbitMQ forgets it),
    and the NATS server is SIGKILLed at that moment. The PubAck was the only copy left:
    after a restart on the same store the stream must still hold it."""
    engine = nats_factory()
    names = Names()

    async def scenario():
        client = await nats.connect(engine.url, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.1)
        js = client.jetstream()
        await prepare(rabbitmq_server.url, js, names)

        async def kill_nats_once_entry_3_is_acked(step: str, msg_id: str) -> None:
            if (step, msg_id) == ("acked", "entry-3"):
                await asyncio.to_thread(engine.kill)  # SIGKILL: no flush, no goodbye

        with pytest.raises(BridgeStalled, match="did not confirm entry-4 after 2 attempts"):
            await bridge_until_idle(rabbitmq_server.url, js, names, retries=2,
                                    publish_timeout=0.5, on_step=kill_nats_once_entry_3_is_acked)
        await asyncio.to_thread(engine.start)  # the same store directory
        bridge = await bridge_until_idle(rabbitmq_server.url, js, names)
        stored = await read_stream(js, names.stream)
        await client.close()
        return bridge, stored

    bridge, stored = run(scenario(), timeout=120)
    assert [msg_id for msg_id, _ in stored] == IDS  # entry-1 to entry-3 survived the kill
    # entry-4's timed-out publishes wait in the client's reconnect buffer and may reach the
    # restarted server first: then the new bridge's entry-4 is dropped as a duplicate
    assert (bridge.relayed, bridge.duplicates) in {(2, 0), (2, 1)}
