"""Which broker? The decision guide as rules you can read, argue with and change.

A flow is described by what it needs. The rules check the needs that rule
an option out first (replay, scale, routing, operations), then prefer the
option with the fewest new moving parts: a table in the database you already
run beats a new cluster when it is enough. Every verdict lists its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    """What one message flow needs, in the terms that decide the broker."""

    name: str
    messages_per_second: int = 10
    needs_replay: bool = False        # re-read history: new consumers, rebuilt views, bug fixes
    needs_routing: bool = False       # per-message routing rules, priorities, dead letters
    same_db_transaction: bool = False  # the message must commit with a database change
    already_runs: frozenset[str] = frozenset()  # "postgres", "redis", ...
    managed_cloud_only: bool = False  # the team will not operate a broker itself
    many_readers_of_history: bool = False


@dataclass(frozen=True)
class Choice:
    """The recommendation and every reason behind it."""

    broker: str
    reasons: tuple[str, ...]


def choose(flow: Flow) -> Choice:
    """Apply the rules to one flow."""
    if flow.messages_per_second < 0:
        raise ValueError(f"{flow.name}: messages_per_second cannot be negative")
    reasons: list[str] = []
    if flow.managed_cloud_only:
        reasons.append("nobody on the team will run a broker")
        if flow.needs_replay or flow.many_readers_of_history:
            return Choice("managed Kafka-compatible log (MSK, Event Hubs, Confluent Cloud)",
                          (*reasons, "history must be re-readable"))
        return Choice("managed queue (SQS + SNS, Pub/Sub, Service Bus)", tuple(reasons))
    if flow.needs_replay or flow.many_readers_of_history:
        reasons.append("consumers must re-read history")
        if flow.messages_per_second > 50_000:
            return Choice("Kafka", (*reasons, f"{flow.messages_per_second:,} msg/s needs partitions"))
        if "redis" in flow.already_runs:
            return Choice("Redis Streams", (*reasons, "Redis already runs here"))
        return Choice("Kafka or NATS JetStream", tuple(reasons))
    if flow.same_db_transaction and "postgres" in flow.already_runs:
        reasons.append("the message commits with the state change (outbox or queue table)")
        if flow.messages_per_second <= 5_000:
            return Choice("PostgreSQL table (SKIP LOCKED)", (*reasons, "volume fits one database"))
        return Choice("PostgreSQL outbox -> broker", (*reasons, "too much volume for one table"))
    if flow.needs_routing:
        return Choice("RabbitMQ", ("routing keys, dead letters and priorities per message",))
    if "redis" in flow.already_runs:
        return Choice("Redis Streams", ("Redis already runs here", "no replay or routing needed"))
    if "postgres" in flow.already_runs and flow.messages_per_second <= 5_000:
        return Choice("PostgreSQL table (SKIP LOCKED)", ("nothing new to operate",))
    return Choice("RabbitMQ", ("a general-purpose work queue",))


def main() -> None:
    """Five flows of the diary coaching system."""
    runs = frozenset({"postgres"})
    flows = [
        Flow("coaching jobs (LLM calls)", 5, same_db_transaction=True, already_runs=runs),
        Flow("entry events for 6 consumers", 200, needs_replay=True, many_readers_of_history=True,
             already_runs=runs),
        Flow("voice transcripts to agents", 40, needs_routing=True, already_runs=runs),
        Flow("reminder e-mails", 2, already_runs=runs),
        Flow("clickstream analytics", 80_000, needs_replay=True, already_runs=runs),
    ]
    for flow in flows:
        choice = choose(flow)
        print(f"{flow.name:<30} -> {choice.broker}")
        print(f"{'':<30}    because {'; '.join(choice.reasons)}")


if __name__ == "__main__":
    main()
