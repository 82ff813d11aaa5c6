"""The engine fixtures start real servers that real clients can use, and restart
with their data where the engine persists it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from pathlib import Path

import psycopg
import pytest
import redis

from tests import engines


def test_redis_answers_a_real_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.xadd("entries", {"text": "ran 3 km"})
    assert client.xlen("entries") >= 1


def test_redis_with_aof_keeps_a_stream_across_a_restart(redis_factory):
    engine = redis_factory(appendonly=True)
    redis.Redis.from_url(engine.url).xadd("entries", {"n": "1"})
    engine.restart()
    assert redis.Redis.from_url(engine.url).xlen("entries") == 1


def test_postgres_gives_each_test_its_own_database(postgres_db):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE entries (id int primary key)")
        conn.execute("INSERT INTO entries VALUES (1)")
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (1,)


def test_rabbitmq_accepts_a_publish_and_a_get(rabbitmq_server):
    import aio_pika

    async def scenario() -> bytes:
        connection = await aio_pika.connect_robust(rabbitmq_server.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("engine-check", auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hello"),
                                                   routing_key=queue.name)
            message = await queue.get(timeout=5)
            await message.ack()
            return message.body

    assert asyncio.run(scenario()) == b"hello"


def test_rabbitmq_listens_only_on_loopback(rabbitmq_server):
    with socket.create_connection(("127.0.0.1", rabbitmq_server.port), timeout=2):
        pass


def test_nats_jetstream_keeps_a_stream_across_a_restart(nats_factory):
    import nats

    engine = nats_factory()

    async def publish() -> None:
        nc = await nats.connect(engine.url)
        js = nc.jetstream()
        await js.add_stream(name="ENTRIES", subjects=["coaching.entries.>"])
        await js.publish("coaching.entries.created", b"1")
        await nc.close()

    async def count() -> int:
        nc = await nats.connect(engine.url)
        info = await nc.jetstream().stream_info("ENTRIES")
        await nc.close()
        return info.state.messages

    asyncio.run(publish())
    engine.restart()
    assert asyncio.run(count()) == 1


def test_tansu_speaks_the_kafka_protocol_to_aiokafka(kafka_server):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def scenario() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_server.url)
        await producer.start()
        try:
            await producer.send_and_wait("entries", b"ran 3 km", key=b"ana")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("entries", bootstrap_servers=kafka_server.url,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=50)
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=5000)
            return [m.value for messages in batch.values() for m in messages]
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == [b"ran 3 km"]


def test_fresh_engine_env_gives_working_engines_with_no_state(fresh_engine_env):
    import aio_pika

    env = fresh_engine_env()
    assert sorted(env) == ["AMQP_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP", "NATS_URL", "REDIS_URL"]
    assert redis.Redis.from_url(env["REDIS_URL"]).dbsize() == 0
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone() == (0,)

    async def declare() -> int:
        connection = await aio_pika.connect_robust(env["AMQP_URL"])
        async with connection:
            queue = await (await connection.channel()).declare_queue("fresh-check")
            return queue.declaration_result.message_count

    assert asyncio.run(declare()) == 0
    assert fresh_engine_env(["REDIS_URL"]).keys() == {"REDIS_URL"}


# ---------------------------------------------------------------- EDD_SHARED_ENGINES
# (make mutate shares PostgreSQL and RabbitMQ between sessions; the sessions themselves
# are exercised in tests/mutation/test_runner.py)


def test_without_the_variable_nothing_is_shared(monkeypatch):
    monkeypatch.delenv(engines.SHARED_ENGINES, raising=False)
    assert engines.shared_engines() == {}
    assert engines._shared("postgres") is None
    assert engines._shared("rabbitmq") is None


def test_the_variable_names_the_servers_the_session_fixtures_use(tmp_path, monkeypatch):
    path = tmp_path / "engines.json"
    path.write_text(json.dumps({"postgres": {"url": "postgresql://postgres@127.0.0.1:5999/postgres",
                                             "port": 5999}}))
    monkeypatch.setenv(engines.SHARED_ENGINES, str(path))
    engine = engines._shared("postgres")
    assert (engine.name, engine.url, engine.port, engine.shared, engine.process) == (
        "postgres", "postgresql://postgres@127.0.0.1:5999/postgres", 5999, True, None)
    assert engines._shared("rabbitmq") is None  # not named: the fixture starts its own


@pytest.mark.parametrize(("text", "message"), [
    (None, "cannot read it: .*No such file"),
    ("{not json", "cannot read it: Expecting property name"),
    ("[]", "expected a JSON object of engines"),
    ('{"redis": {"url": "redis://x", "port": 1}, "nats": {}}',
     "nats, redis cannot be shared; only postgres and rabbitmq can"),
    ('{"postgres": {"url": "postgresql://x"}}', "postgres lacks port"),
    ('{"rabbitmq": {"url": "amqp://x", "port": 1}}',
     "rabbitmq lacks management_port, node, env"),
])
def test_a_bad_shared_engines_file_is_refused_with_the_problem_named(
        tmp_path, monkeypatch, text, message):
    path = tmp_path / "engines.json"
    if text is not None:
        path.write_text(text)
    monkeypatch.setenv(engines.SHARED_ENGINES, str(path))
    with pytest.raises(RuntimeError, match=f"^EDD_SHARED_ENGINES={re.escape(str(path))}: {message}"):
        engines.shared_engines()


def test_a_shared_engine_is_never_started_stopped_or_killed_by_a_session():
    engine = engines.Engine("postgres", "postgresql://x", 5999, Path("/tmp"), [],
                            ready=lambda: True, shared=True)
    engine.stop()  # nothing of this session's to stop
    with pytest.raises(RuntimeError, match="^the shared postgres on port 5999 belongs to the "
                                           "process that started it: use postgres_factory"):
        engine.restart()
    with pytest.raises(RuntimeError, match="^the shared postgres on port 5999 is not this "
                                           "session's to kill: use postgres_factory"):
        engine.kill()
    assert engine.process is None


def test_names_on_a_shared_engine_carry_a_token_drawn_again_after_a_fork(monkeypatch):
    private = engines.Engine("postgres", "u", 1, Path("/tmp"), [], ready=lambda: True)
    shared = engines.Engine("postgres", "u", 1, Path("/tmp"), [], ready=lambda: True,
                            shared=True)
    pid = os.getpid()
    assert engines._scoped("test", private, 7) == f"test_{pid}_7"  # as before
    token = engines._session_token()
    assert re.fullmatch(r"[0-9a-f]{6}", token)
    assert engines._scoped("test", shared, 7) == f"test_{pid}_{token}_7"
    assert engines._session_token() == token
    monkeypatch.setattr(engines.os, "getpid", lambda: pid + 1)  # as in a forked child
    assert engines._session_token() != token
