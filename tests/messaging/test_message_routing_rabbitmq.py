"""RabbitMQ topic and dead-letter routing against a real broker."""

from __future__ import annotations

import uuid

import pytest

from snippets.messaging.message_routing_rabbitmq import Unroutable, connect, main
from tests.engines import free_port
from tests.messaging.conftest import run


def test_the_demo_routes_refuses_and_dead_letters(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    run(main())
    assert capsys.readouterr().out == (
        "billing.invoice.paid      -> no queue is bound to a pattern matching "
        "'billing.invoice.paid'\n"
        "audit      got ['coaching.entries.created', 'coaching.goals.set', "
        "'coaching.goals.set.v2']\n"
        "goal-coach got ['coaching.goals.set']\n"
        "mood-agent got ['coaching.entries.created']\n"
        "rejected b'entry-\\x00corrupt'; dead letter b'entry-\\x00corrupt' from 'demo.mood-agent', "
        "reason 'rejected', count 1\n")


def test_an_unroutable_key_raises_and_lands_nowhere(rabbitmq_server):
    prefix = uuid.uuid4().hex[:8]

    async def scenario():
        router = await connect(rabbitmq_server.url, exchange=f"x-{prefix}")
        await router.bind(f"{prefix}-goals", "coaching.goals.*")
        with pytest.raises(Unroutable, match="'coaching.entries.created'"):
            await router.publish("coaching.entries.created", b"lost?")
        await router.publish("coaching.goals.set", b"kept")  # the channel still works
        got = await router.drain(f"{prefix}-goals")
        dead = await router.dead_letters()
        await router.close()
        return got, dead

    assert run(scenario()) == ([b"kept"], [])


def test_dead_letters_carry_x_death_with_queue_reason_and_count(rabbitmq_server):
    prefix = uuid.uuid4().hex[:8]

    async def scenario():
        router = await connect(rabbitmq_server.url, exchange=f"x-{prefix}")
        await router.bind(f"{prefix}-mood", "coaching.entries.*")
        for body in (b"poison-1", b"fine", b"poison-2"):
            await router.publish("coaching.entries.created", body)
        rejected = [await router.reject_next(f"{prefix}-mood")]
        left = await router.drain(f"{prefix}-mood")
        rejected.append(await router.reject_next(f"{prefix}-mood"))  # nothing left
        dead = await router.dead_letters()
        await router.close()
        return rejected, left, dead

    rejected, left, dead = run(scenario())
    assert rejected == [b"poison-1", None] and left == [b"fine", b"poison-2"]
    [(body, deaths)] = dead
    assert body == b"poison-1"
    assert {k: deaths[0][k] for k in ("queue", "reason", "count")} == {
        "queue": f"{prefix}-mood", "reason": "rejected", "count": 1}


def test_a_broker_that_is_down_is_named_in_the_error():
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with pytest.raises(ConnectionError, match=f"cannot reach RabbitMQ at {url}"):
        run(connect(url), timeout=20)
