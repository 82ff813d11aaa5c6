"""Message TTL, per-message expiration and queue TTL against a real RabbitMQ: the demo,
expired messages dead-lettered with their x-death, a message read in time is not, the
head-of-line rule, and bad input."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from snippets.messaging.retention_and_compaction_rabbitmq import (
    connect,
    declare_expiring,
    exists,
    main,
    publish,
    take,
    until,
)
from tests.engines import free_port
from tests.messaging.conftest import run

RECORDED = (Path(__file__).resolve().parents[2] / "docs" / "data" / "outputs" / "messaging"
            / "retention_and_compaction_rabbitmq.txt")


def test_the_demo_prints_what_the_page_shows(rabbitmq_server, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", rabbitmq_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == RECORDED.read_text()


def test_a_message_read_in_time_is_not_dead_lettered_and_an_expired_one_says_why(
        rabbitmq_server):
    queue = f"ttl.{uuid.uuid4().hex[:8]}"

    async def scenario():
        connection = await connect(rabbitmq_server.url)
        channel = await connection.channel()
        dead = await declare_expiring(channel, queue, ttl_ms=300)
        await publish(channel, queue, b"read in time")
        in_time = await take(channel, queue)
        await publish(channel, queue, b"left unread")

        async def dead_lettered() -> bool:
            declared = await channel.declare_queue(dead, passive=True)
            return declared.declaration_result.message_count == 1

        await until(dead_lettered)
        declared = await channel.get_queue(dead)
        letter = await declared.get(timeout=5)
        await letter.ack()
        left = await take(channel, queue)
        await connection.close()
        return in_time, letter, left

    in_time, letter, left = run(scenario())
    assert in_time == [(b"read in time", None)] and left == []
    [death] = letter.headers["x-death"]
    assert letter.body == b"left unread"
    assert (death["reason"], death["queue"], death["count"]) == ("expired", queue, 1)


def test_a_short_expiration_behind_a_long_one_waits_until_it_reaches_the_head(rabbitmq_server):
    queue = f"hol.{uuid.uuid4().hex[:8]}"

    async def scenario():
        connection = await connect(rabbitmq_server.url)
        channel = await connection.channel()
        dead = await declare_expiring(channel, queue, ttl_ms=None)
        await publish(channel, queue, b"long", expiration_s=60)
        await publish(channel, queue, b"short", expiration_s=0.05)
        await asyncio.sleep(0.4)  # eight times its expiration: it has expired, but sits second
        stuck = await take(channel, dead)
        await take(channel, queue)  # the head goes; the expired one is found and moved

        async def moved() -> bool:
            declared = await channel.declare_queue(dead, passive=True)
            return declared.declaration_result.message_count == 1

        await until(moved)
        letters = await take(channel, dead)
        await connection.close()
        return stuck, letters

    stuck, letters = run(scenario())
    assert stuck == [] and letters == [(b"short", "expired")]


def test_a_queue_in_use_outlives_its_x_expires_and_an_unused_one_does_not(rabbitmq_server):
    used, unused = f"used.{uuid.uuid4().hex[:8]}", f"unused.{uuid.uuid4().hex[:8]}"

    async def scenario():
        connection = await connect(rabbitmq_server.url)
        channel = await connection.channel()
        for name in (used, unused):
            await channel.declare_queue(name, arguments={"x-expires": 400})
        queue = await channel.get_queue(used)

        async def ignore(message) -> None:
            pass

        tag = await queue.consume(ignore)  # a consumer is a use

        async def unused_gone() -> bool:
            return not await exists(connection, unused)

        await until(unused_gone, every=0.8)
        still_there = await exists(connection, used)
        await queue.cancel(tag)
        await channel.queue_delete(used)
        await connection.close()
        return still_there

    assert run(scenario()) is True


def test_a_negative_ttl_is_refused_before_anything_is_declared(rabbitmq_server):
    queue = f"bad.{uuid.uuid4().hex[:8]}"

    async def scenario():
        connection = await connect(rabbitmq_server.url)
        with pytest.raises(ValueError, match="ttl_ms must be >= 0"):
            await declare_expiring(await connection.channel(), queue, ttl_ms=-1)
        declared = await exists(connection, queue), await exists(connection, f"{queue}.expired")
        await connection.close()
        return declared

    assert run(scenario()) == (False, False)


def test_a_condition_that_never_holds_fails_after_its_deadline():
    async def never() -> bool:
        return False

    with pytest.raises(TimeoutError, match="not true after 0.1 s: never"):
        run(until(never, timeout=0.1))


def test_without_its_server_the_demo_says_which_variable_to_set_and_exits_1(
        monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/")
    assert run(main()) == 1
    err = capsys.readouterr().err
    assert f"cannot reach RabbitMQ at amqp://guest:guest@127.0.0.1:{port}/" in err
    assert "Set AMQP_URL" in err
