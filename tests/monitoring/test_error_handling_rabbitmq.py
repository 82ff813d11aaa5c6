"""Tests of dead-lettering on a real RabbitMQ: x-death reason, count, and untouched headers."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aio_pika
import pytest

from snippets.monitoring.error_handling_rabbitmq import (
    PermanentError,
    collect,
    declare,
    guarded,
    main,
)
from tests import engines
from tests.engines import free_port

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_names = itertools.count(1)
rabbitmq_factory = engines.rabbitmq_factory  # a dedicated node that a test may restart


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def scenario(url: str, handler, bodies: list[bytes], expect: int, limit: int = 3):
    """Publish ``bodies`` to a fresh queue consumed by ``handler``; collect ``expect`` letters.

    Returns the letters, each message's outcomes from ``guarded`` (``handled``, ``retry``,
    ``rejected``) in delivery order, the dead-letter queue's leftover count, the channel
    and the queue name."""
    name = f"test.mon.{next(_names)}"
    deliveries: dict[str, list[str]] = {}  # message id -> what guarded() did, delivery by delivery
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        work, dlq = await declare(channel, name, delivery_limit=limit)

        in_flight = [0]
        settled = asyncio.Event()  # every message has an outcome and none is being handled

        async def counting(message):
            in_flight[0] += 1
            settled.clear()
            try:
                outcome = await guarded(message, handler)
                deliveries.setdefault(message.message_id, []).append(outcome)
                return outcome
            finally:
                in_flight[0] -= 1
                if not in_flight[0] and len(deliveries) == len(bodies):
                    settled.set()

        tag = await work.consume(counting)
        for n, body in enumerate(bodies, start=1):
            await channel.default_exchange.publish(aio_pika.Message(
                body, message_id=f"m-{n}", headers={"correlation_id": f"req-{n}",
                                                    "traceparent": TRACEPARENT}),
                routing_key=name)
        letters = await collect(dlq, expect, delivery_limit=limit) if expect else []
        await work.cancel(tag)
        await asyncio.wait_for(settled.wait(), 10)  # an outcome may come after its letter
        left = await channel.declare_queue(f"{name}.dlq", passive=True)
        return letters, deliveries, left.declaration_result.message_count, channel, name


def test_a_message_that_keeps_failing_is_dead_lettered_by_the_broker_at_the_limit(rabbitmq_server):
    async def flaky(body: bytes) -> None:
        raise TimeoutError("model endpoint did not answer")

    letters, deliveries, left, *_ = run(scenario(rabbitmq_server.url, flaky, [b'{"entry": 2}'], 1))
    [letter] = letters
    assert deliveries == {"m-1": ["retry"] * 4}  # the first delivery and three more
    assert (letter.reason, letter.count, letter.attempts) == ("delivery_limit", 1, 4)
    assert letter.routing_keys == [letter.queue] and letter.exchange == ""
    assert letter.headers == {"correlation_id": "req-1", "traceparent": TRACEPARENT}
    assert (letter.message_id, letter.body, left) == ("m-1", b'{"entry": 2}', 0)


def test_a_poison_message_is_dead_lettered_at_once_with_reason_rejected(rabbitmq_server):
    async def strict(body: bytes) -> None:
        raise PermanentError("body is not JSON")

    letters, deliveries, *_ = run(scenario(rabbitmq_server.url, strict, [b"not json"], 1))
    assert deliveries == {"m-1": ["rejected"]}
    assert (letters[0].reason, letters[0].attempts) == ("rejected", None)
    assert letters[0].headers["traceparent"] == TRACEPARENT


def test_only_the_failing_messages_reach_the_dead_letter_queue(rabbitmq_server):
    async def picky(body: bytes) -> None:
        if body.startswith(b"bad"):
            raise PermanentError(body.decode())

    bodies = [b"ok-1", b"bad-2", b"ok-3", b"bad-4", b"ok-5"]
    letters, deliveries, left, *_ = run(scenario(rabbitmq_server.url, picky, bodies, 2))
    assert sorted(letter.body for letter in letters) == [b"bad-2", b"bad-4"]
    assert deliveries == {"m-1": ["handled"], "m-2": ["rejected"], "m-3": ["handled"],
                          "m-4": ["rejected"], "m-5": ["handled"]}
    assert left == 0  # nothing else arrived


def test_a_letter_redriven_into_the_same_failure_dies_again_with_its_count_raised(rabbitmq_server):
    async def strict(body: bytes) -> None:
        raise PermanentError("still broken")

    async def twice():
        url = rabbitmq_server.url
        letters, _, _, _, name = await scenario(url, strict, [b"x"], 1)
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            work, dlq = await declare(channel, name)

            async def on_message(message):
                await guarded(message, strict)

            tag = await work.consume(on_message)
            first = letters[0]  # redrive it by hand, x-death and all
            await channel.default_exchange.publish(aio_pika.Message(
                first.body, message_id=first.message_id,
                headers=first.headers | {"x-death": [{"count": first.count, "reason": first.reason,
                                                      "queue": first.queue, "exchange": "",
                                                      "routing-keys": first.routing_keys}]}),
                routing_key=name)
            [again] = await collect(dlq, 1)
            await work.cancel(tag)
            return again

    again = run(twice())
    assert (again.reason, again.count) == ("rejected", 2)


def test_the_demo_prints_both_dead_letters(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    run(main())
    assert capsys.readouterr().out.splitlines() == [
        ("m-2: reason=delivery_limit count=1 attempts=4 queue=demo.entries.mood "
         "routing_keys=['demo.entries.mood'] headers={'correlation_id': 'req-2'}"),
        ("m-3: reason=rejected count=1 attempts=None queue=demo.entries.mood "
         "routing_keys=['demo.entries.mood'] headers={'correlation_id': 'req-3'}"),
    ]


def test_without_a_broker_the_demo_says_where_it_looked_and_exits_cleanly(monkeypatch, capsys):
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    monkeypatch.setenv("AMQP_URL", url)
    run(main())
    assert f"No RabbitMQ at {url}" in capsys.readouterr().err


def test_collect_gives_up_after_its_timeout(rabbitmq_server):
    async def empty():
        async with await aio_pika.connect(rabbitmq_server.url) as connection:
            channel = await connection.channel()
            _, dlq = await declare(channel, f"test.mon.{next(_names)}")
            with pytest.raises(asyncio.TimeoutError):
                await collect(dlq, 1, timeout=0.2)

    run(empty())


KILLER = """
    import asyncio, os, signal, sys
    import aio_pika
    from snippets.monitoring.error_handling_rabbitmq import guarded

    url, queue = sys.argv[1:]

    async def main():
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        work = await channel.get_queue(queue)

        async def crash(body):
            os.kill(os.getpid(), signal.SIGKILL)  # a segfault: no except block runs

        async def on_message(message):
            await guarded(message, crash)

        await work.consume(on_message)
        await asyncio.sleep(30)  # only reached if nothing was delivered

    asyncio.run(main())
"""


def test_a_message_that_kills_every_consumer_is_dead_lettered_by_the_broker_not_lost(
        rabbitmq_server):
    """Each consumer process is SIGKILLed by the message while handling it, so nothing is
    acked, nacked or rejected. The quorum queue counts each return; after the first
    delivery and three more (limit 3), the broker dead-letters it with its headers."""
    root = Path(__file__).resolve().parents[2]
    name = f"test.mon.{next(_names)}"

    async def prepare():
        async with await aio_pika.connect(rabbitmq_server.url) as connection:
            channel = await connection.channel()
            await declare(channel, name, delivery_limit=3)
            await channel.default_exchange.publish(aio_pika.Message(
                b"segfault", message_id="m-1", headers={"traceparent": TRACEPARENT}),
                routing_key=name)

    async def letters_and_left():
        async with await aio_pika.connect(rabbitmq_server.url) as connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(f"{name}.dlq", passive=True)
            letters = await collect(dlq, 1, delivery_limit=3, timeout=30)  # waits for it
            work = await channel.declare_queue(name, passive=True)
            return letters, work.declaration_result.message_count

    run(prepare())
    codes = []
    for _ in range(4):  # the first delivery and three more, each killing its consumer
        killed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(KILLER), rabbitmq_server.url, name],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=60, check=False)
        codes.append(killed.returncode)
    assert codes == [-signal.SIGKILL] * 4
    letters, left = run(letters_and_left())
    assert left == 0
    [letter] = letters
    assert (letter.message_id, letter.reason, letter.attempts) == ("m-1", "delivery_limit", 4)
    assert letter.headers == {"traceparent": TRACEPARENT}


def test_a_message_routed_in_by_another_exchange_and_key_is_dead_lettered_all_the_same(
        rabbitmq_server):
    """Producers rarely publish to the queue's own name: here a topic exchange routes
    ``entries.mood.v1`` to the work queue. The dead-letter routing key sends the letter
    to the dead-letter queue whatever key it came with; ``x-death`` names the exchange
    and the key it was published with."""
    async def routed():
        name = f"test.mon.{next(_names)}"
        async with await aio_pika.connect(rabbitmq_server.url) as connection:
            channel = await connection.channel()
            work, dlq = await declare(channel, name)
            events = await channel.declare_exchange(f"{name}.events",
                                                    aio_pika.ExchangeType.TOPIC)
            await work.bind(events, routing_key="entries.#")

            async def strict(body: bytes) -> None:
                raise PermanentError("body is not JSON")

            async def on_message(message):
                await guarded(message, strict)

            tag = await work.consume(on_message)
            await events.publish(aio_pika.Message(
                b"not json", message_id="m-1", headers={"traceparent": TRACEPARENT}),
                routing_key="entries.mood.v1")
            [letter] = await collect(dlq, 1)
            await work.cancel(tag)
            return name, letter

    name, letter = run(routed())
    assert (letter.reason, letter.queue, letter.count) == ("rejected", name, 1)
    assert (letter.exchange, letter.routing_keys) == (f"{name}.events", ["entries.mood.v1"])
    assert letter.headers == {"traceparent": TRACEPARENT}


async def parked_by_hand(url: str, headers: dict) -> object:
    """Publish straight to a dead-letter queue, as an operator moving a message or a
    newer broker would leave it, and read it back with ``collect``."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        _, dlq = await declare(channel, f"test.mon.{next(_names)}")
        await channel.default_exchange.publish(aio_pika.Message(
            b'{"entry": 9}', message_id="m-9", headers=headers), routing_key=dlq.name)
        [letter] = await collect(dlq, 1, delivery_limit=3)
        return letter


def test_a_message_that_never_died_reads_as_reason_unknown_with_nothing_made_up(
        rabbitmq_server):
    """A message moved into the dead-letter queue by hand has no ``x-death``: ``collect``
    takes it like any other, with reason ``unknown``, a count of 0, no attempts, and
    empty queue, exchange and routing keys rather than invented ones."""
    letter = run(parked_by_hand(rabbitmq_server.url, {"traceparent": TRACEPARENT}))
    assert (letter.reason, letter.count, letter.attempts) == ("unknown", 0, None)
    assert (letter.queue, letter.exchange, letter.routing_keys) == ("", "", [])
    assert (letter.message_id, letter.body) == ("m-9", b'{"entry": 9}')
    assert letter.headers == {"traceparent": TRACEPARENT}


def test_the_death_summary_headers_of_newer_brokers_are_not_taken_for_original_headers(
        rabbitmq_server):
    """RabbitMQ 3.13 and later add ``x-last-death-*`` headers beside ``x-first-death-*``
    and ``x-death``: a letter as such a broker leaves it still has only its original
    headers, and its reason and count come from the newest ``x-death`` entry."""
    death = {"count": 2, "reason": "delivery_limit", "queue": "q", "exchange": "ex",
             "routing-keys": ["q"]}
    older = {"count": 1, "reason": "rejected", "queue": "q", "exchange": "ex",
             "routing-keys": ["q"]}
    summary = {f"x-{which}-death-{field}": value
               for which in ("first", "last")
               for field, value in (("reason", "rejected"), ("queue", "q"), ("exchange", "ex"))}
    letter = run(parked_by_hand(rabbitmq_server.url, {
        "traceparent": TRACEPARENT, "x-death": [death, older], **summary}))
    assert letter.headers == {"traceparent": TRACEPARENT}
    assert (letter.reason, letter.count, letter.attempts) == ("delivery_limit", 2, 4)
    assert (letter.queue, letter.exchange, letter.routing_keys) == ("q", "ex", ["q"])


def test_dead_letters_and_the_route_to_them_survive_a_broker_restart(rabbitmq_factory):
    """A letter parked before the restart is still there after it, and a message that
    fails after the restart, before any consumer declared the topology again, still
    reaches the dead-letter queue: the exchange, the queue and the binding are durable.
    The letters are published persistent: the dead-letter queue is a classic queue, which
    drops transient messages at a restart (the quorum work queue keeps them)."""
    engine = rabbitmq_factory()
    name = f"test.mon.{next(_names)}"

    async def strict(body: bytes) -> None:
        raise PermanentError("body is not JSON")

    async def on_message(message):
        await guarded(message, strict)

    async def fail(work, channel, message_id: str) -> None:
        await channel.default_exchange.publish(aio_pika.Message(
            b"not json", message_id=message_id, headers={"traceparent": TRACEPARENT},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)

    async def before():
        async with await aio_pika.connect(engine.url) as connection:
            channel = await connection.channel()
            work, _ = await declare(channel, name)
            tag = await work.consume(on_message)
            await fail(work, channel, "m-1")
            while True:  # until the broker has parked it
                dlq = await channel.declare_queue(f"{name}.dlq", passive=True)
                if dlq.declaration_result.message_count == 1:
                    break
                await asyncio.sleep(0.05)
            await work.cancel(tag)

    async def after():
        async with await aio_pika.connect(engine.url) as connection:
            channel = await connection.channel()
            work = await channel.get_queue(name)  # what the broker kept, not declared again
            dlq = await channel.get_queue(f"{name}.dlq")
            tag = await work.consume(on_message)
            await fail(work, channel, "m-2")
            letters = await collect(dlq, 2)
            await work.cancel(tag)
            return letters

    run(before())
    engine.restart()
    letters = run(after())
    assert [(d.message_id, d.reason, d.queue) for d in letters] == [
        ("m-1", "rejected", name), ("m-2", "rejected", name)]
    assert all(d.headers == {"traceparent": TRACEPARENT} for d in letters)
