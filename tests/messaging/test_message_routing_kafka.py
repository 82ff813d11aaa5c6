"""Keyed partitioning on Kafka (aiokafka against Tansu): placement and per-key order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from snippets.messaging.message_routing_kafka import (
    consume_group,
    create_topic,
    main,
    partition_for,
    publish_keyed,
)
from tests.messaging.conftest import run


def test_the_demo_keeps_each_user_on_one_partition_in_order(kafka_server, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "2000")
    run(main())
    assert capsys.readouterr().out == (
        "ana: partition 1 (predicted 1), 1 reader, in order: "
        "['ran 3 km', 'set goal 10 km', 'ran 5 km']\n"
        "dan: partition 0 (predicted 0), 1 reader, in order: ['slept badly', 'walked']\n"
        "zoe: partition 2 (predicted 2), 1 reader, in order: ['meditated']\n"
        "3 -> 4 partitions would move 75% of keys\n")


def test_forty_users_keep_their_order_and_their_partition_across_a_group_of_three(kafka_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"
    users = [f"user-{n}" for n in range(40)]
    writes = [(user, f"{user}#{i}") for i in range(5) for user in users]

    async def scenario():
        await create_topic(kafka_server.url, topic, 4)
        placed = await publish_keyed(kafka_server.url, topic, writes)
        handled = await consume_group(kafka_server.url, topic, "coaches", 3, len(writes),
                                      session_timeout_ms=2000)
        return placed, handled

    placed, handled = run(scenario())
    assert placed == {user: partition_for(user, 4) for user in users}
    assert sum(map(len, handled.values())) == len(writes)
    for user in users:
        readers = [name for name, records in handled.items() if any(u == user for u, _ in records)]
        assert len(readers) == 1, user
        texts = [t for u, t in handled[readers[0]] if u == user]
        assert texts == [f"{user}#{i}" for i in range(5)]


def test_a_partition_count_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1 partition, got 0"):
        partition_for("ana", 0)


def test_more_consumers_than_partitions_never_settle_and_say_so(kafka_server):
    topic = f"t{uuid.uuid4().hex[:8]}.entries"

    async def scenario():
        await create_topic(kafka_server.url, topic, 2)
        await consume_group(kafka_server.url, topic, "coaches", 3, 1, timeout=2,
                            session_timeout_ms=2000)

    with pytest.raises(TimeoutError, match="did not settle within 2 s"):
        run(scenario())


def test_four_producers_writing_at_once_keep_each_users_order_across_the_group(kafka_server):
    """Four app servers publish at the same time, each for its own ten users, so the
    partitions receive their records interleaved: each user's entries still reach one
    consumer of the group, in the order its producer wrote them."""
    topic = f"t{uuid.uuid4().hex[:8]}.entries"
    servers = [[f"s{s}-user-{n}" for n in range(10)] for s in range(4)]
    writes = [[(user, f"{user}#{i}") for i in range(6) for user in users] for users in servers]

    async def scenario():
        await create_topic(kafka_server.url, topic, 4)
        placed = await asyncio.gather(*[publish_keyed(kafka_server.url, topic, w)
                                        for w in writes])
        handled = await consume_group(kafka_server.url, topic, "coaches", 3,
                                      sum(map(len, writes)), session_timeout_ms=2000)
        return placed, handled

    placed, handled = run(scenario())
    for users, where in zip(servers, placed):
        assert where == {user: partition_for(user, 4) for user in users}
    assert sum(map(len, handled.values())) == 240
    for user in [u for users in servers for u in users]:
        readers = [name for name, records in handled.items() if any(u == user for u, _ in records)]
        assert len(readers) == 1, user
        assert [t for u, t in handled[readers[0]] if u == user] == [f"{user}#{i}" for i in range(6)]
