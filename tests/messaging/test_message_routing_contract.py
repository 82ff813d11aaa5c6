"""One routing table, three routers: the in-memory topic exchange, a RabbitMQ topic
exchange and NATS subjects get the same bindings and the same keys, and each
subscriber must get exactly the same messages on all three."""

from __future__ import annotations

import uuid

import pytest

from snippets.messaging import message_routing_nats, message_routing_rabbitmq
from snippets.messaging.message_routing_topics import TopicExchange
from tests.messaging.conftest import run

BINDINGS = {"goal-coach": "coaching.goals.*", "mood-agent": "coaching.entries.*",
            "audit": "coaching.#", "created": "*.*.created", "everything": "#"}
KEYS = ["coaching.entries.created", "coaching.goals.set", "coaching.goals.set.v2",
        "system.agent.created", "billing.invoice.paid"]
EXPECTED = {
    "goal-coach": ["coaching.goals.set"],
    "mood-agent": ["coaching.entries.created"],
    "audit": ["coaching.entries.created", "coaching.goals.set", "coaching.goals.set.v2"],
    "created": ["coaching.entries.created", "system.agent.created"],
    "everything": KEYS,
}


async def in_memory(keys: list[str], request) -> dict[str, list[str]]:
    exchange = TopicExchange()
    for queue, pattern in BINDINGS.items():
        exchange.bind(queue, pattern)
    for key in keys:
        exchange.publish(key, key)
    return {q: exchange.queues.get(q, []) for q in BINDINGS}


async def rabbitmq(keys: list[str], request) -> dict[str, list[str]]:
    url = request.getfixturevalue("rabbitmq_server").url
    prefix = uuid.uuid4().hex[:8]
    router = await message_routing_rabbitmq.connect(url, exchange=f"x-{prefix}")
    for queue, pattern in BINDINGS.items():
        await router.bind(f"{prefix}-{queue}", pattern)
    for key in keys:
        await router.publish(key, key.encode())
    got = {q: [b.decode() for b in await router.drain(f"{prefix}-{q}")] for q in BINDINGS}
    await router.close()
    return got


async def nats(keys: list[str], request) -> dict[str, list[str]]:
    url = request.getfixturevalue("nats_server").url
    router = await message_routing_nats.connect(url)
    for name, pattern in BINDINGS.items():
        await router.subscribe(name, message_routing_nats.amqp_to_nats(pattern))
    await router.client.flush()
    for key in keys:
        await router.publish(key)
    await router.settle()
    got = {name: list(router.received[name]) for name in BINDINGS}
    await router.close()
    return got


ROUTERS = {"memory": in_memory, "rabbitmq": rabbitmq, "nats": nats}


@pytest.mark.parametrize("router", ROUTERS)
def test_each_subscriber_gets_exactly_the_messages_its_pattern_matches(router, request):
    assert run(ROUTERS[router](KEYS, request)) == EXPECTED


@pytest.mark.parametrize(("router", "audit_gets_bare_key"),
                         [("memory", True), ("rabbitmq", True), ("nats", False)])
def test_hash_matches_zero_words_but_nats_greater_than_needs_one(router, audit_gets_bare_key,
                                                                 request):
    got = run(ROUTERS[router](["coaching"], request))
    assert (got["audit"] == ["coaching"]) is audit_gets_bare_key
    assert got["everything"] == ["coaching"]


def test_a_hash_before_the_end_cannot_be_translated_to_nats():
    with pytest.raises(ValueError, match="no zero-or-more wildcard before the end"):
        message_routing_nats.amqp_to_nats("coaching.#.set")
    assert message_routing_nats.amqp_to_nats("#") == ">"
