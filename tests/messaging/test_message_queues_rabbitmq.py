"""RabbitMQ queues: the demo, prefetch as the bound on what one consumer holds, a publish
that no queue takes failing loudly, and a broker restart mid-stream that loses no
persistent message and undoes no ack."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aiormq
import pytest

from snippets.messaging.message_queues_rabbitmq import UnroutableError, connect, main
from tests.messaging.conftest import run
from tests.messaging.support import drain
from tests.messaging.test_message_queues_in_memory import EXPECTED


def test_the_demo_prints_what_the_in_memory_one_prints(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    run(main())
    assert capsys.readouterr().out == EXPECTED


def test_prefetch_bounds_what_a_stuck_consumer_holds_so_the_others_get_the_rest(rabbitmq_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url, prefetch=2)
        stuck = await broker.consumer(topic, "coaches", "stuck")
        healthy = await broker.consumer(topic, "coaches", "healthy")
        for n in range(10):
            await broker.publish(topic, f"entry-{n}".encode())
        held = await stuck.receive(max_messages=10, timeout=2)  # never acks
        done = []
        while len(done) < 10 - len(held):
            batch = await healthy.receive(max_messages=10, timeout=2)
            assert batch, "the healthy consumer starved"
            await healthy.ack(batch)
            done += batch
        await broker.close()
        return held, done

    held, done = run(scenario())
    assert len(held) <= 2
    assert sorted(m.body for m in held + done) == sorted(f"entry-{n}".encode() for n in range(10))


def test_a_message_requeued_by_a_closing_channel_is_flagged_redelivered(rabbitmq_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        first = await broker.consumer(topic, "coaches", "first")
        await broker.publish(topic, b"entry-1")
        [held] = await first.receive(timeout=5)
        await first.close()
        second = await broker.consumer(topic, "coaches", "second")
        [again] = await second.receive(timeout=5)
        await second.ack([again, again])  # a second ack of the same message is skipped
        await broker.close()
        return held, again

    held, again = run(scenario())
    assert (held.deliveries, again.deliveries, again.body) == (1, 2, b"entry-1")


def test_a_batch_is_settled_with_one_multiple_ack_but_never_a_message_still_held(
        rabbitmq_server):
    """ack() sends basic.ack multiple=True only when nothing older is still held: acking
    entries 3-4 while 1-2 are in work must leave 1-2 unacknowledged (redelivered after a
    crash), and acking 1-2 afterwards settles them with nothing left behind."""
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        worker = await broker.consumer(topic, "coaches", "worker")
        await broker.publish_many(topic, [f"entry-{n}".encode() for n in range(1, 7)])
        got = []
        while len(got) < 6:
            got += await worker.receive(max_messages=6, timeout=5)
        older, newer, rest = got[:2], got[2:4], got[4:]
        await worker.ack(newer)  # out of order: each on its own
        await worker.close()  # a crash: 1, 2, 5 and 6 go back
        again = await broker.consumer(topic, "coaches", "again")
        back = []
        while len(back) < 4:
            back += await again.receive(max_messages=6, timeout=5)
        await again.ack(back)  # in order: one multiple ack for all four
        await again.close()
        last = await broker.consumer(topic, "coaches", "last")
        left = await last.receive(max_messages=6, timeout=0.5)
        await broker.close()
        return [m.body for m in older + rest], back, left

    held, back, left = run(scenario())
    assert sorted(m.body for m in back) == sorted(held)
    assert all(m.deliveries == 2 for m in back)
    assert left == []


def test_a_publish_that_no_queue_takes_raises_and_stores_nothing(rabbitmq_server):
    """Without a bound queue RabbitMQ confirms a message and drops it unless it is
    mandatory: publish and publish_many raise instead, and a group subscribed afterwards
    gets only what was published after it, once."""
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        exchange = await broker.channel.declare_exchange(
            topic, aio_pika.ExchangeType.FANOUT, durable=True)
        dropped = await exchange.publish(aio_pika.Message(b"entry-x"), routing_key="",
                                         mandatory=False)
        assert isinstance(dropped, aiormq.spec.Basic.Ack)  # confirmed, stored nowhere
        with pytest.raises(UnroutableError) as alone:
            await broker.publish(topic, b"entry-0")
        with pytest.raises(UnroutableError):
            await broker.publish_many(topic, [b"entry-1", b"entry-2"])
        reader = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"entry-3")  # the same channel still publishes
        got = await reader.receive(max_messages=10, timeout=5)
        await reader.ack(got)
        got += await reader.receive(max_messages=10, timeout=0.5)
        await broker.close()
        return str(alone.value), [(m.body, m.deliveries) for m in got]

    error, got = run(scenario())
    assert error == (f"RabbitMQ stored no copy: no queue is bound to topic {topic!r}; "
                     "subscribe a group (again: a crash can lose a binding) and publish again")
    assert got == [(b"entry-3", 1)]


def test_a_lost_binding_makes_publish_raise_until_subscribe_binds_the_queue_again(
        rabbitmq_server):
    """What a SIGKILL of the node can do (see the restart test): the durable queue and its
    messages come back, its binding to the topic does not. A publish then raises rather
    than being confirmed and dropped; subscribe (idempotent) binds the queue again, the
    publish is sent again, and the group gets everything exactly once."""
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        reader = await broker.consumer(topic, "coaches", "reader")
        await broker.publish(topic, b"entry-1")
        queue = await broker.channel.get_queue(f"{topic}.coaches")
        await queue.unbind(topic)  # the binding is lost; the queue keeps entry-1
        with pytest.raises(UnroutableError, match="no queue is bound to topic"):
            await broker.publish(topic, b"entry-2")
        await broker.subscribe(topic, "coaches")
        await broker.publish(topic, b"entry-2")
        got = []
        while len(got) < 2:
            batch = await reader.receive(max_messages=10, timeout=5)
            assert batch, f"only {got} arrived"
            await reader.ack(batch)
            got += batch
        got += await reader.receive(max_messages=10, timeout=0.5)
        await broker.close()
        return [(m.body, m.deliveries) for m in got]

    assert run(scenario()) == [(b"entry-1", 1), (b"entry-2", 1)]


def test_a_group_that_lost_its_binding_misses_messages_silently_while_another_is_bound(
        rabbitmq_server):
    """The limit of mandatory: RabbitMQ returns only a message that no queue takes. With
    another group still bound, a publish succeeds and the unbound group gets nothing
    until subscribe binds its queue again."""
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        broker = await connect(rabbitmq_server.url)
        coach = await broker.consumer(topic, "coaches", "coach")
        reflection = await broker.consumer(topic, "reflection", "evening")
        queue = await broker.channel.get_queue(f"{topic}.reflection")
        await queue.unbind(topic)
        await broker.publish(topic, b"entry-1")  # no error: the coaches' queue took it
        await broker.subscribe(topic, "reflection")
        await broker.publish(topic, b"entry-2")
        got = {}
        for name, consumer in (("coaches", coach), ("reflection", reflection)):
            got[name] = []
            while len(got[name]) < (2 if name == "coaches" else 1):
                batch = await consumer.receive(max_messages=10, timeout=5)
                assert batch, f"{name}: only {got[name]} arrived"
                await consumer.ack(batch)
                got[name] += batch
            got[name] += await consumer.receive(max_messages=10, timeout=0.5)
        await broker.close()
        return {name: [m.body for m in messages] for name, messages in got.items()}

    assert run(scenario()) == {"coaches": [b"entry-1", b"entry-2"], "reflection": [b"entry-2"]}


async def resend(broker, topic: str, group: str, numbers: range) -> int:
    """The producer's at-least-once resend after it reconnects, one confirmed publish at a
    time. A publish refused with ``UnroutableError`` (the node lost the topic's binding to
    the group's queue) binds the queue again with ``subscribe`` and is sent once more; a
    second refusal fails the test. Returns the number of refusals."""
    refused = 0
    for n in numbers:
        body = f"entry-{n}".encode()
        try:
            await broker.publish(topic, body)
        except UnroutableError:
            refused += 1
            await broker.subscribe(topic, group)
            await broker.publish(topic, body)
    return refused


async def stream(broker, topic: str, first: int, confirmed: list[int],
                 flowing: asyncio.Event) -> int:
    """Publish ``entry-<n>`` one at a time, each confirmed, until a publish fails.

    Appends what the broker confirmed to ``confirmed``, sets ``flowing`` after 20,
    and returns the number whose publish failed: that one may or may not be
    stored, so an at-least-once producer sends it again.
    """
    n = first
    while True:
        try:
            await asyncio.wait_for(broker.publish(topic, f"entry-{n}".encode()), 10)
        except (aio_pika.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError,
                ConnectionError, TimeoutError,  # the connection dies under the publish
                UnroutableError):  # or the stopping node routes it nowhere: not stored
            return n
        confirmed.append(n)
        if len(confirmed) == 20:
            flowing.set()
        n += 1
        await asyncio.sleep(0.005)  # a steady stream, not a flood, while the broker stops


@pytest.mark.parametrize("crash", [False, True], ids=["SIGTERM", "SIGKILL"])
def test_persistent_messages_survive_a_rabbitmq_restart_mid_stream_and_acks_hold(
        rabbitmq_factory, crash):
    """Stop the node (SIGTERM) or kill it (SIGKILL to the node and its children) while a
    publisher streams and a consumer holds messages, start it again on the same data
    directory, and drain the durable queue. A confirm is sent once a persistent message
    is on disk, so the kill loses nothing confirmed.

    After a SIGKILL, RabbitMQ 3.10 on a loaded machine sometimes brings back the queue
    and its messages without the topic's binding to it: the producer's next publish then
    raises ``UnroutableError`` (before publish asked for returns, RabbitMQ confirmed
    such a message and dropped it), and the producer binds the queue again and resends."""
    engine = rabbitmq_factory()
    topic = "coaching.entries"

    async def scenario():
        broker = await connect(engine.url)
        consumer = await broker.consumer(topic, "coaches", "first")
        for n in range(10):
            await broker.publish(topic, f"entry-{n}".encode())
        transient = aio_pika.Message(b"transient", delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT)
        await broker.channel.default_exchange.publish(transient, routing_key=f"{topic}.coaches")
        held = await consumer.receive(max_messages=6, timeout=5)
        await consumer.ack(held[:4])
        await consumer.channel.set_qos(prefetch_count=100)  # a round trip: the acks are in
        confirmed: list[int] = []
        flowing = asyncio.Event()
        publisher = asyncio.create_task(stream(broker, topic, 10, confirmed, flowing))
        await flowing.wait()
        await asyncio.to_thread(engine.kill if crash else engine.stop)  # mid-stream
        failed = await publisher
        await asyncio.to_thread(engine.start)  # the same node, the same data directory

        broker = await connect(engine.url)
        # the producer resends what was not confirmed, then four more
        refused = await resend(broker, topic, "coaches", range(failed, failed + 5))
        survivor = await broker.consumer(topic, "coaches", "survivor")
        drained = await drain(survivor, {f"entry-{n}" for n in range(4, failed + 5)})
        await broker.close()
        return held, confirmed, failed, refused, drained

    held, confirmed, failed, refused, drained = run(scenario(), timeout=150)
    bodies = [m.body.decode() for m in drained]
    expected = {f"entry-{n}" for n in range(4, failed + 5)}
    assert confirmed == list(range(10, failed))  # every publish before the failure was confirmed
    assert refused <= 1                                  # a lost binding, once bound again, holds
    assert set(bodies) == expected                      # nothing confirmed is lost
    assert not {"entry-0", "entry-1", "entry-2", "entry-3"} & set(bodies)  # acks held
    assert "transient" not in bodies                     # a real restart: it dropped this one
    duplicates = {b for b in bodies if bodies.count(b) > 1}
    assert duplicates <= {f"entry-{failed}"}             # only the unconfirmed one, resent
    redelivered = {m.body.decode(): m.deliveries for m in drained}
    assert [redelivered[m.body.decode()] for m in held[4:]] == [2, 2]
