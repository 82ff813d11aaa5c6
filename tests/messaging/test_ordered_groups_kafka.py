"""Key-ordered parallel consumption on Kafka (aiokafka against Tansu): order per key in
one partition, keys in parallel, commits that never pass unfinished work, parking."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.ordered_groups_kafka import (
    KeyOrderedConsumer,
    OffsetTracker,
    create_topics,
    main,
    publish,
    read_topic,
)
from tests.engines import free_port
from tests.messaging.conftest import run

ROOT = Path(__file__).resolve().parents[2]
SESSION_MS = 2000
TP = TopicPartition("t", 0)


def test_the_demo_runs_three_keys_of_one_partition_at_once_and_parks_bens_entries(
        kafka_server, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", str(SESSION_MS))
    assert run(main(), timeout=120) == 0
    assert capsys.readouterr().out == """\
ana-1, ben-1 and caro-1 met at a barrier of 3: 3 keys of 1 partition at once
handled {'ana': [1, 2, 3], 'ben': [1], 'caro': [1, 2]}
parked ['ben-2', 'ben-3'], committed up to offset 8
after a restart: handled {'dan': [1]}
parked ['ben-2', 'ben-3', 'ben-4'], committed up to offset 10
"""


@given(st.integers(1, 30).flatmap(lambda n: st.permutations(list(range(n)))))
def test_the_commit_point_is_always_the_lowest_unfinished_offset(finish_order):
    tracker = OffsetTracker()
    for offset in range(len(finish_order)):
        tracker.take(TP, 100 + offset)
    unfinished = set(range(100, 100 + len(finish_order)))
    for offset in finish_order:
        tracker.done(TP, 100 + offset)
        unfinished.discard(100 + offset)
        point = tracker.committable()[TP]
        assert point == min(unfinished, default=100 + len(finish_order))
        assert all(point <= u for u in unfinished)  # never past unfinished work


def test_the_tracker_refuses_offsets_out_of_order_and_finishing_what_was_never_taken():
    tracker = OffsetTracker()
    tracker.take(TP, 5)
    with pytest.raises(ValueError, match=r"t\[0\]: offset 4 taken after 5"):
        tracker.take(TP, 4)
    with pytest.raises(KeyError, match=r"t\[0\]: offset 6 is not in flight"):
        tracker.done(TP, 6)
    tracker.forget({TP})
    assert tracker.committable() == {}
    tracker.take(TP, 0)  # a partition handed back starts afresh


def new_topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.entries"


async def until(condition, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_each_key_keeps_its_order_and_never_runs_twice_at_once_in_one_partition(kafka_server):
    topic, rnd = new_topic(), random.Random(7)
    keys = [f"user-{n}" for n in range(6)]
    counters = dict.fromkeys(keys, 0)
    entries = []
    for key in rnd.choices(keys, k=40):  # a random interleaving of 6 users
        counters[key] += 1
        entries.append((key, counters[key]))
    handled: dict[str, list[int]] = defaultdict(list)
    in_flight: set[str] = set()
    busiest = 0

    async def handler(record) -> None:
        nonlocal busiest
        user, n = record.value.decode().rsplit("-", 1)
        assert user not in in_flight
        in_flight.add(user)
        busiest = max(busiest, len(in_flight))
        for _ in range(rnd.randint(0, 3)):
            await asyncio.sleep(0.001)
        handled[user].append(int(n))
        in_flight.discard(user)

    async def scenario() -> KeyOrderedConsumer:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, entries)
        member = KeyOrderedConsumer(kafka_server.url, topic, "g", handler, max_in_flight=10,
                                    session_timeout_ms=SESSION_MS)
        await member.start()
        await member.run(until=lambda: sum(member.committed.values()) == len(entries))
        await member.stop()
        return member

    run(scenario())
    for key in keys:
        assert handled[key] == list(range(1, counters[key] + 1))
    assert busiest > 1


def test_a_crash_never_commits_past_an_unfinished_record_and_the_restart_redoes_it(kafka_server):
    """Record 0 (ana) hangs; everything after it finishes; the consumer dies. The commit
    point stays at 0, so the next member handles ana-1 and repeats the rest."""
    topic, hang = new_topic(), asyncio.Event()
    entries = [("ana", 1), ("ben", 1), ("caro", 1), ("ben", 2), ("caro", 2)]
    first: list[str] = []
    second: list[str] = []

    async def stuck(record) -> None:
        if record.value == b"ana-1":
            await hang.wait()
        first.append(record.value.decode())

    async def healthy(record) -> None:
        second.append(record.value.decode())

    async def scenario() -> dict:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, entries)
        doomed = KeyOrderedConsumer(kafka_server.url, topic, "g", stuck,
                                    session_timeout_ms=SESSION_MS)
        await doomed.start()
        await doomed.run(until=lambda: len(first) == 4)
        await doomed.commit()
        committed = dict(doomed.committed)
        await doomed.stop(drain=False)  # the crash: ana-1 is abandoned mid-flight
        survivor = KeyOrderedConsumer(kafka_server.url, topic, "g", healthy,
                                      session_timeout_ms=SESSION_MS)
        await survivor.start()
        await survivor.run(until=lambda: sum(survivor.committed.values()) == len(entries))
        await survivor.stop()
        return committed

    committed = run(scenario())
    assert sum(committed.values()) == 0  # four of five finished, yet nothing committed past 0
    assert sorted(first) == ["ben-1", "ben-2", "caro-1", "caro-2"]
    assert sorted(second) == sorted(f"{u}-{n}" for u, n in entries)  # 4 of them a second time
    assert second.index("ben-1") < second.index("ben-2")
    assert second.index("caro-1") < second.index("caro-2")


def test_a_member_joining_mid_stream_takes_partitions_over_without_breaking_any_keys_order(
        kafka_server):
    """Before partitions move, the leaving owner finishes what it took and commits: the
    new owner starts after it, so no key is handled out of order or twice."""
    topic = new_topic()
    keys = [f"user-{n}" for n in range(8)]
    entries = [(key, n) for n in range(1, 7) for key in keys]
    log: list[tuple[str, int, str]] = []
    rebalancing = asyncio.Event()

    def handler_for(name: str):
        async def handler(record) -> None:
            if name == "a" and len(log) >= 8:
                await rebalancing.wait()  # a keeps work in flight until the handover starts
            user, n = record.value.decode().rsplit("-", 1)
            log.append((user, int(n), name))
        return handler

    async def scenario() -> None:
        await create_topics(kafka_server.url, [topic], partitions=4)
        await publish(kafka_server.url, topic, entries)
        a = KeyOrderedConsumer(kafka_server.url, topic, "g", handler_for("a"), max_in_flight=4,
                               session_timeout_ms=SESSION_MS)
        b = KeyOrderedConsumer(kafka_server.url, topic, "g", handler_for("b"), max_in_flight=4,
                               session_timeout_ms=SESSION_MS)
        drain = a.drain

        async def noting_drain(tps=None) -> None:  # called when a's partitions are revoked
            if tps:  # (the first join revokes an empty set)
                rebalancing.set()
            await drain(tps)

        a.drain = noting_drain
        await a.start()
        running_a = asyncio.create_task(a.run(until=lambda: len(log) >= len(entries)))
        await until(lambda: len(log) >= 8)
        await b.start()
        await b.run(until=lambda: len(log) >= len(entries))
        await running_a
        await a.stop()
        await b.stop()

    run(scenario(), timeout=120)
    assert sorted((u, n) for u, n, _ in log) == sorted(entries)  # each exactly once
    for key in keys:
        assert [n for u, n, _ in log if u == key] == list(range(1, 7))
    assert {who for _, _, who in log} == {"a", "b"}


def test_a_record_that_cannot_be_parked_stops_the_consumer_and_is_not_committed(kafka_server):
    topic = new_topic()

    async def failing(record) -> None:
        raise RuntimeError("always")

    async def broker_gone(*args, **kwargs):
        raise KafkaConnectionError("broker went away")

    async def scenario() -> dict:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, [("ana", 1)])
        member = KeyOrderedConsumer(kafka_server.url, topic, "g", failing, max_attempts=2,
                                    backoff=0.0, session_timeout_ms=SESSION_MS)
        await member.start()
        member.producer.send_and_wait = broker_gone  # fault injection: parking fails
        with pytest.raises(KafkaConnectionError, match="broker went away"):
            await member.run(until=lambda: False)
        committed = dict(member.committed)
        await member.consumer.stop()
        await member.producer.stop()
        return committed

    assert sum(run(scenario()).values()) == 0


def test_the_parked_topic_records_where_each_record_came_from_and_why(kafka_server):
    topic = new_topic()

    async def handler(record) -> None:
        if record.value == b"ben-1":
            raise ValueError("bad entry")

    async def scenario() -> list:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, [("ben", 1), ("ben", 2)])
        member = KeyOrderedConsumer(kafka_server.url, topic, "g", handler, max_attempts=1,
                                    session_timeout_ms=SESSION_MS)
        await member.start()
        await member.run(until=lambda: sum(member.committed.values()) == 2)
        await member.stop()
        return await read_topic(kafka_server.url, f"{topic}.parked")

    parked = run(scenario())
    assert [(r.key, r.value) for r in parked] == [(b"ben", b"ben-1"), (b"ben", b"ben-2")]
    assert dict(parked[0].headers) == {"x-parked-from": f"{topic}/0/0".encode(),
                                       "x-parked-reason": b"ValueError: bad entry"}
    assert dict(parked[1].headers)["x-parked-reason"] == b"an earlier record of this key is parked"


def test_a_consumer_that_could_take_nothing_is_refused():
    async def handler(record) -> None:
        pass

    with pytest.raises(ValueError, match="max_in_flight and max_attempts must be at least 1"):
        KeyOrderedConsumer("127.0.0.1:9", "t", "g", handler, max_in_flight=0)


def test_a_broker_that_is_down_makes_the_demo_exit_1_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    assert run(main(), timeout=60) == 1
    assert "Set KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_a_key_parked_by_one_member_stays_parked_when_its_partition_moves_to_another(
        kafka_server):
    """Two members start while nothing is parked. The owner of ben's partition parks ben-1
    (poison) and ben-2, then leaves; the other member takes the partition over. It must
    park ben-3 too, not handle it as if ben-1 and ben-2 had never happened."""
    topic = new_topic()
    handled: list[str] = []

    async def handler(record) -> None:
        if record.value == b"ben-1":
            raise ValueError("entry text is not valid UTF-8")
        handled.append(record.value.decode())

    async def scenario() -> list[str]:
        await create_topics(kafka_server.url, [topic], partitions=2)
        members = [KeyOrderedConsumer(kafka_server.url, topic, "g", handler, max_attempts=1,
                                      session_timeout_ms=SESSION_MS) for _ in range(2)]
        for member in members:
            await member.start()  # both learn the parked keys now: none yet
        stop = asyncio.Event()
        running = [asyncio.create_task(m.run(until=stop.is_set)) for m in members]
        await until(lambda: all(len(m.consumer.assignment()) == 1 for m in members))
        await publish(kafka_server.url, topic, [("ben", 1), ("ben", 2)])
        ben = TopicPartition(topic, (await read_topic(kafka_server.url, topic))[0].partition)
        [owner] = [m for m in members if ben in m.consumer.assignment()]
        [other] = [m for m in members if m is not owner]
        await until(lambda: owner.committed.get(ben) == 2)  # both parked and committed
        stop.set()
        await asyncio.gather(*running)
        await owner.stop()  # leaves the group: ben's partition moves to the other member
        await publish(kafka_server.url, topic, [("ben", 3)])
        await other.run(until=lambda: other.committed.get(ben) == 3)
        await other.stop()
        return [r.value.decode() for r in await read_topic(kafka_server.url, f"{topic}.parked")]

    parked = run(scenario(), timeout=120)
    assert "ben-3" not in handled
    assert parked == ["ben-1", "ben-2", "ben-3"]


def test_a_crash_between_parking_and_committing_parks_nothing_twice(kafka_server):
    """The member parks ben-1 on the parked topic and dies before it commits. The next
    member reads ben-1 again: it is on the parked topic already, so it is neither run nor
    parked a second time, and ben-2 is parked behind it."""
    topic = new_topic()
    calls: list[str] = []

    async def handler(record) -> None:
        calls.append(record.value.decode())
        if record.value == b"ben-1":
            raise ValueError("entry text is not valid UTF-8")

    async def scenario() -> tuple[dict, list]:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, [("ben", 1), ("ben", 2)])
        doomed = KeyOrderedConsumer(kafka_server.url, topic, "g", handler, max_attempts=1,
                                    session_timeout_ms=SESSION_MS)
        park, parked_once = doomed._park, asyncio.Event()

        async def park_then_die(record, reason) -> None:
            await park(record, reason)
            parked_once.set()
            await asyncio.Event().wait()  # the crash comes before the lane moves on

        doomed._park = park_then_die
        await doomed.start()
        await doomed.run(until=parked_once.is_set)
        await doomed.stop(drain=False)
        committed = dict(doomed.committed)
        survivor = KeyOrderedConsumer(kafka_server.url, topic, "g", handler, max_attempts=1,
                                      session_timeout_ms=SESSION_MS)
        await survivor.start()
        await survivor.run(until=lambda: sum(survivor.committed.values()) == 2)
        await survivor.stop()
        parked = await read_topic(kafka_server.url, f"{topic}.parked")
        return committed, [(r.value, dict(r.headers)["x-parked-from"]) for r in parked]

    committed, parked = run(scenario(), timeout=120)
    assert sum(committed.values()) == 0  # ben-1 was parked, but its offset not committed
    assert parked == [(b"ben-1", f"{topic}/0/0".encode()), (b"ben-2", f"{topic}/0/1".encode())]
    assert calls == ["ben-1"]  # ben-2 was never run: its key is parked


KILLED_WITH_WORK_IN_FLIGHT = """
    import asyncio, os, signal, sys
    from snippets.messaging.ordered_groups_kafka import KeyOrderedConsumer

    bootstrap, topic = sys.argv[1:]
    finished = []

    async def handler(record):
        if record.value == b"ana-1":
            await asyncio.Event().wait()  # the model call that never returns
        finished.append(record.value)

    async def main():
        member = KeyOrderedConsumer(bootstrap, topic, "g", handler, session_timeout_ms=2000)
        await member.start()
        await member.run(until=lambda: len(finished) == 4)
        await member.commit()  # everything it may commit, it has
        print(sorted(v.decode() for v in finished), sum(member.committed.values()), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
"""


def test_a_consumer_process_killed_with_work_in_flight_has_committed_nothing_past_it(
        kafka_server):
    """A real process: ana-1 hangs, the four records after it finish and the member commits
    all it may; then SIGKILL. The next member of the group starts at ana-1 and handles all
    five, each key in order."""
    topic = new_topic()
    entries = [("ana", 1), ("ben", 1), ("caro", 1), ("ben", 2), ("caro", 2)]
    second: list[str] = []

    async def before() -> None:
        await create_topics(kafka_server.url, [topic], partitions=1)
        await publish(kafka_server.url, topic, entries)

    async def healthy(record) -> None:
        second.append(record.value.decode())

    async def after() -> None:
        survivor = KeyOrderedConsumer(kafka_server.url, topic, "g", healthy,
                                      session_timeout_ms=SESSION_MS)
        await survivor.start()
        await survivor.run(until=lambda: sum(survivor.committed.values()) == len(entries))
        await survivor.stop()

    run(before())
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WITH_WORK_IN_FLIGHT), kafka_server.url,
         topic], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=90, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert killed.stdout == "['ben-1', 'ben-2', 'caro-1', 'caro-2'] 0\n"
    run(after(), timeout=90)
    assert sorted(second) == sorted(f"{u}-{n}" for u, n in entries)
    assert second.index("ben-1") < second.index("ben-2")
    assert second.index("caro-1") < second.index("caro-2")
