"""JetStream durable consumers: the demo, and a server restart with the file store."""

from __future__ import annotations

import asyncio

import pytest

from snippets.messaging.message_queues_nats import connect, main, stream_name
from tests.messaging.conftest import run
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints(nats_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    run(main())
    run(main())  # again, on a server that already has the stream
    out = capsys.readouterr().out
    assert out == EXPECTED * 2


def test_stream_names_drop_the_characters_jetstream_forbids():
    assert stream_name("coaching.entries") == "COACHING_ENTRIES"
    assert stream_name("coaching.voice-notes") == "COACHING_VOICE_NOTES"


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "SIGKILL"])
def test_acks_and_unacked_messages_survive_a_jetstream_restart(nats_factory, crash):
    """File storage: every published message the server acknowledged survives both a
    graceful shutdown and a SIGKILL. A consumer's acks are different: the server writes
    the consumer's state a moment after it applies an ack, so a SIGKILL right after two
    applied acks can hand those two back as redeliveries, while a graceful shutdown keeps
    them. (A shutdown right after the acks were sent, before the server applied them, can
    hand them back too: the test waits until the consumer's ack floor shows them.)
    Nothing is lost either way; after a crash, an acknowledged message may come back."""
    engine = nats_factory()

    async def before():
        broker = await connect(engine.url, lease=0.5)
        consumer = await broker.consumer("coaching.entries", "coaches", "first")
        for n in range(5):
            await broker.publish("coaching.entries", f"entry-{n}".encode())
        batch = []
        while len(batch) < 5:  # a fetch may return before all five have arrived
            got = await consumer.receive(max_messages=5 - len(batch), timeout=5)
            assert got, "the published messages never arrived"
            batch += got
        await consumer.ack(batch[:2])
        stream = stream_name("coaching.entries")
        for _ in range(200):  # until the server has applied both acks, not just received them
            info = await broker.js.consumer_info(stream, "coaches")
            if info.ack_floor.stream_seq == 2 and info.num_ack_pending == 3:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the server never applied the two acks: {info}")
        await broker.close()
        return batch

    async def after():
        broker = await connect(engine.url, lease=0.5)
        stored = (await broker.js.stream_info(stream_name("coaching.entries"))).state.messages
        survivor = await broker.consumer("coaching.entries", "coaches", "survivor")
        again = []
        while batch := await survivor.receive(max_messages=10, timeout=5 if len(again) < 3 else 1):
            await survivor.ack(batch + batch)  # acking twice is harmless
            again += batch
        extra = await survivor.receive(timeout=1)
        await broker.close()
        return stored, again, extra

    batch = run(before())
    engine.kill() if crash else engine.stop()
    engine.start()
    stored, again, extra = run(after())
    assert stored == 5 and extra == []
    assert all(m.deliveries >= 2 for m in again)
    bodies = [m.body for m in again]
    if crash:  # the unacknowledged three, in order, and perhaps the two acked before it
        assert bodies in ([m.body for m in batch[2:]], [m.body for m in batch])
    else:
        assert bodies == [m.body for m in batch[2:]]
