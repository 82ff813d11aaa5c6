"""The hourly-words computation on Quix Streams, a Python stream processor for Kafka.

The same tumbling one-hour windows, the same 30 minutes of allowed lateness
(Quix calls it ``grace_ms``) and the same side output of too-late events as
the stdlib aggregator, but with Quix keeping the window state in RocksDB,
checkpointed together with the consumer offsets and backed up to a changelog
topic. It needs a Kafka-protocol broker: set ``KAFKA_BOOTSTRAP`` (``host:port``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import uuid
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum
from quixstreams.models import TopicConfig

HOUR_MS = 3_600_000


# --8<-- [start:pipeline]
def hourly_words(events: list[dict[str, Any]], *, lateness_s: int, bootstrap: str,
                 closing_strategy: str = "key",
                 idle_timeout: float = 2.0) -> tuple[list[tuple], list[tuple]]:
    """Produce ``events`` to a new topic, window them with Quix, return (windows, too late).

    Each event is ``{"user": ..., "time": seconds, "words": n}``; the window key
    is the user, and event time comes from the payload, not from the broker.
    ``closing_strategy="key"`` (Quix's default) keeps one watermark per user.
    """
    run = uuid.uuid4().hex[:8]  # a fresh topic and group on a reused broker
    session_ms = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=bootstrap, consumer_group=f"hourly-words-{run}",
            auto_offset_reset="earliest", state_dir=state_dir, loglevel="ERROR",
            consumer_extra_config={"session.timeout.ms": session_ms, "fetch.wait.max.ms": 100,
                                   "heartbeat.interval.ms": session_ms // 4})
        topic = app.topic(
            f"journal-entries-{run}", value_deserializer="json",
            # An explicit config: Quix derives its changelog topic from retention.ms,
            # which some Kafka-protocol brokers (Tansu 0.6) do not report otherwise.
            config=TopicConfig(num_partitions=1, replication_factor=1,
                               extra_config={"retention.ms": "-1", "retention.bytes": "-1"}),
            timestamp_extractor=lambda value, headers, timestamp, kind: value["time"] * 1000)
        with app.get_producer() as producer:
            for event in events:
                producer.produce(topic=topic.name, key=event["user"],
                                 value=json.dumps(event).encode())

        too_late: list[tuple] = []

        def on_late(value, key, timestamp_ms, late_by_ms, start, end, *where) -> bool:
            too_late.append((key.decode(), timestamp_ms // 1000, value["words"]))
            return False  # handled here: no warning in the log

        app.dataframe(topic).tumbling_window(
            duration_ms=HOUR_MS, grace_ms=lateness_s * 1000, on_late=on_late,
        ).agg(words=Sum("words"), entries=Count()).final(closing_strategy=closing_strategy)
        rows = app.run(timeout=idle_timeout, metadata=True)  # runs the dataframe defined above
    windows = [(row["_key"].decode(), row["start"] // 1000, row["words"], row["entries"])
               for row in rows]
    return windows, too_late
# --8<-- [end:pipeline]


def reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False


def hhmm(t: int) -> str:
    return f"{t // 3600:02}:{t % 3600 // 60:02}"


def main() -> int:
    """Ana's and Ben's entries, out of order, one too late: the windows Quix closes."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if not reachable(bootstrap):
        print(f"no Kafka broker at {bootstrap}: set KAFKA_BOOTSTRAP", file=sys.stderr)
        return 1
    at = lambda h, m: h * 3600 + m * 60
    arrivals = [("ana", at(20, 5), 120), ("ben", at(20, 10), 300), ("ana", at(20, 50), 80),
                ("ana", at(20, 25), 200), ("ben", at(21, 20), 40), ("ana", at(21, 5), 60),
                ("ana", at(21, 40), 90), ("ana", at(20, 55), 30), ("ben", at(22, 30), 10)]
    events = [{"user": user, "time": time, "words": words} for user, time, words in arrivals]
    windows, too_late = hourly_words(events, lateness_s=30 * 60, bootstrap=bootstrap)
    for user, start, words, entries in windows:
        print(f"closed {user} {hhmm(start)}-{hhmm(start + 3600)}: {words} words in {entries}")
    print(f"side output: {[(user, hhmm(time), words) for user, time, words in too_late]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
