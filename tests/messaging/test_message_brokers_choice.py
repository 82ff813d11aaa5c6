"""The broker decision guide: every branch, with its reasons."""

from __future__ import annotations

import pytest

from snippets.messaging.message_brokers_choice import Flow, choose, main


def test_the_demo_recommends_for_five_coaching_flows(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert [line.split("->")[1].strip() for line in out[::2]] == [
        "PostgreSQL table (SKIP LOCKED)", "Kafka or NATS JetStream", "RabbitMQ",
        "PostgreSQL table (SKIP LOCKED)", "Kafka"]
    assert all(line.strip().startswith("because ") for line in out[1::2])


@pytest.mark.parametrize(("flow", "broker"), [
    (Flow("a", managed_cloud_only=True), "managed queue (SQS + SNS, Pub/Sub, Service Bus)"),
    (Flow("b", managed_cloud_only=True, needs_replay=True),
     "managed Kafka-compatible log (MSK, Event Hubs, Confluent Cloud)"),
    (Flow("c", needs_replay=True, already_runs=frozenset({"redis"})), "Redis Streams"),
    (Flow("d", needs_replay=True, messages_per_second=100_000), "Kafka"),
    (Flow("e", same_db_transaction=True, messages_per_second=20_000,
          already_runs=frozenset({"postgres"})), "PostgreSQL outbox -> broker"),
    (Flow("f", already_runs=frozenset({"redis"})), "Redis Streams"),
    (Flow("g"), "RabbitMQ"),
    (Flow("h", already_runs=frozenset({"postgres"}), messages_per_second=9_000), "RabbitMQ"),
])
def test_each_rule_leads_where_it_says(flow, broker):
    choice = choose(flow)
    assert choice.broker == broker and choice.reasons


def test_a_negative_rate_is_refused_by_name():
    with pytest.raises(ValueError, match="reminders: messages_per_second cannot be negative"):
        choose(Flow("reminders", messages_per_second=-1))
