"""One contract, six backends: the same assertions against the in-memory default,
Redis Streams, RabbitMQ, NATS JetStream, PostgreSQL and Kafka (Tansu).

Competing consumers handle each job exactly once; fan-out gives every group
every message; what a consumer received but did not acknowledge comes back
when it leaves or is killed with SIGKILL, and what it acknowledged does not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from snippets.messaging import message_queues_in_memory, message_queues_kafka
from tests.engines import free_port
from tests.messaging.conftest import LEASE, ROOT, Backend, kill, make_backend, run

JOBS = 30


async def work(consumers: list, want: int, seconds: float = 20.0) -> dict[str, list[str]]:
    """Run every consumer concurrently until ``want`` messages were handled in total."""
    handled: dict[str, list[str]] = {c.name: [] for c in consumers}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def loop_of(consumer) -> None:
        while sum(map(len, handled.values())) < want and loop.time() < deadline:
            for message in await consumer.receive(max_messages=5, timeout=0.2):
                handled[consumer.name].append(message.body.decode())
                await asyncio.sleep(0)  # a real handler awaits I/O here
                await consumer.ack([message])

    await asyncio.gather(*(loop_of(c) for c in consumers))
    return handled


async def collect(consumer, want: int, seconds: float = 20.0, ack: bool = False,
                  distinct: bool = False) -> list:
    """Receive until ``want`` messages arrived (or the deadline passes); with ``distinct``,
    until ``want`` different bodies arrived, copies included in the list."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    def count() -> int:
        return len({m.body for m in got}) if distinct else len(got)

    got: list = []
    while count() < want and loop.time() < deadline:
        batch = await consumer.receive(max_messages=want - count(), timeout=0.5)
        if ack:
            await consumer.ack(batch)
        got += batch
    return got


def test_competing_consumers_handle_each_job_exactly_once_and_share_the_work(
        queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        group = backend.group()
        consumers = [await broker.consumer(backend.topic, group, f"coach-{i}") for i in range(3)]
        await backend.settled(consumers)
        for n in range(JOBS):
            await broker.publish(backend.topic, f"job-{n}".encode())
        handled = await work(consumers, JOBS)
        for consumer in consumers:
            await consumer.close()
        await broker.close()
        return handled

    handled = run(scenario())
    every = [job for jobs in handled.values() for job in jobs]
    assert sorted(every) == sorted(f"job-{n}" for n in range(JOBS))  # all, none twice
    assert sum(1 for jobs in handled.values() if jobs) >= 2, handled


def test_fan_out_gives_every_group_every_message(queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        groups = [backend.group() for _ in range(3)]
        for group in groups:
            await broker.subscribe(backend.topic, group)
        for n in range(JOBS):
            await broker.publish(backend.topic, f"entry-{n}".encode())
        seen = {}
        for group in groups:
            consumer = await broker.consumer(backend.topic, group, "only")
            got = await collect(consumer, JOBS)
            await consumer.ack(got)
            seen[group] = [m.body.decode() for m in got]
            await consumer.close()
        await broker.close()
        return seen

    published = [f"entry-{n}" for n in range(JOBS)]
    for group, bodies in run(scenario()).items():
        assert sorted(bodies) == sorted(published), group
        if backend.ordered:  # a Kafka topic keeps order per partition only
            assert bodies == published, group


def test_a_queue_group_gets_only_later_messages_a_log_group_reads_from_the_start(
        queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        await broker.subscribe(backend.topic, "early")
        await broker.publish(backend.topic, b"before")
        late = await broker.consumer(backend.topic, "late", "reader")
        await backend.settled([late])
        await broker.publish(backend.topic, b"after")
        got = await collect(late, len(expected), ack=True)
        got += await late.receive(timeout=0.5)
        await late.close()
        await broker.close()
        return [m.body for m in got]

    reads_history = backend.module is message_queues_kafka
    expected = [b"before", b"after"] if reads_history else [b"after"]
    assert sorted(run(scenario())) == sorted(expected)  # Kafka: two partitions, any order


def test_what_a_leaving_consumer_did_not_acknowledge_comes_back_and_nothing_else(
        queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        group = backend.group()
        first = await broker.consumer(backend.topic, group, "first")
        await backend.settled([first])
        for n in range(5):
            await broker.publish(backend.topic, f"entry-{n}".encode())
        batch = await collect(first, 5)
        await first.ack(batch[:2])
        await first.close()  # leaves holding three
        second = await broker.consumer(backend.topic, group, "second")
        again = await collect(second, 3, ack=True, distinct=True)
        extra = await second.receive(max_messages=5, timeout=LEASE * 1.5)
        await second.ack(extra)
        await second.close()
        await broker.close()
        return batch, again, extra

    batch, again, extra = run(scenario())
    assert len(batch) == 5
    unacknowledged = {m.body for m in batch[2:]}
    assert {m.body for m in again} == unacknowledged
    # The two acknowledged never come back. At least once: on a busy machine a copy of one
    # of the three may come twice, when the second consumer's ack comes after its lease.
    assert {m.body for m in again + extra} <= unacknowledged
    if backend.counts_deliveries:
        assert all(m.deliveries >= 2 for m in again)


KILLED_MID_BATCH = """
    import ast, asyncio, os, signal, sys
    from snippets.messaging import (message_queues_kafka, message_queues_nats,
        message_queues_postgres, message_queues_rabbitmq, message_queues_redis)

    name, url, options, topic, group = sys.argv[1:]
    module = {"redis": message_queues_redis, "rabbitmq": message_queues_rabbitmq,
              "nats": message_queues_nats, "postgres": message_queues_postgres,
              "kafka": message_queues_kafka}[name]

    async def main():
        broker = await module.connect(url, **ast.literal_eval(options))
        consumer = await broker.consumer(topic, group, "doomed")
        while name == "kafka" and not consumer.client.assignment():
            await consumer.receive(timeout=0.1)  # nothing is published yet: just joining
        print("joined", flush=True)
        batch = []
        while len(batch) < 5:
            batch += await consumer.receive(max_messages=5 - len(batch), timeout=1.0)
        await consumer.ack(batch[:2])
        print(",".join(m.body.decode() for m in batch), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: three received, not acknowledged

    asyncio.run(main())
"""


def test_a_consumer_killed_mid_batch_loses_nothing_and_its_acks_hold(engine_backend: Backend):
    backend = engine_backend
    group = backend.group()

    async def setup():
        broker = await backend.connect()
        await broker.subscribe(backend.topic, group)
        await broker.close()

    async def publish():
        broker = await backend.connect()
        for n in range(5):
            await broker.publish(backend.topic, f"entry-{n}".encode())
        await broker.close()

    async def survive():
        broker = await backend.connect()
        survivor = await broker.consumer(backend.topic, group, "survivor")
        again = await collect(survivor, 3, seconds=30)
        await survivor.ack(again)
        extra = await survivor.receive(max_messages=5, timeout=LEASE * 1.5)
        await survivor.close()
        await broker.close()
        return again, extra

    run(setup())
    child = backend.child(KILLED_MID_BATCH, group)
    try:
        assert child.stdout.readline().strip() == "joined"
        run(publish())
        received = child.stdout.readline().strip().split(",")
        assert child.wait(30) == -9, "the consumer should have been killed by SIGKILL"
    finally:
        if child.poll() is None:
            kill(child)
        child.stdout.close()
    again, extra = run(survive())
    assert len(received) == 5
    assert sorted(m.body.decode() for m in again) == sorted(received[2:])
    assert extra == []
    if backend.counts_deliveries:
        assert all(m.deliveries >= 2 for m in again)


@pytest.mark.parametrize(("topic", "body", "error", "words"), [
    ("coaching.entries", "text, not bytes", TypeError, "must be bytes, not str"),
    ("coaching.entries", b"x" * (1024 * 1024 + 1), ValueError, "exceeds the 1048576-byte limit"),
    ("Coaching.Entries", b"ok", ValueError, "invalid name 'Coaching.Entries'"),
    ("coaching..entries", b"ok", ValueError, "invalid name 'coaching..entries'"),
])
def test_bad_input_is_refused_by_name_and_loses_nothing_already_published(
        queue_backend: Backend, topic, body, error, words):
    backend = queue_backend
    topic = topic.replace("coaching.entries", backend.topic)

    async def scenario():
        broker = await backend.connect()
        group = backend.group()
        consumer = await broker.consumer(backend.topic, group, "reader")
        await backend.settled([consumer])
        await broker.publish(backend.topic, b"kept")
        with pytest.raises(error, match=words.replace(".", r"\.")):
            await broker.publish(topic, body)
        got = await collect(consumer, 1)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return [m.body for m in got]

    assert run(scenario()) == [b"kept"]


def test_a_broker_that_is_down_fails_fast_with_its_address_in_the_error(engine_backend: Backend):
    backend = engine_backend
    port = free_port()
    down = {"redis": f"redis://127.0.0.1:{port}/0", "rabbitmq": f"amqp://guest:guest@127.0.0.1:{port}/",
            "nats": f"nats://127.0.0.1:{port}", "postgres": f"postgresql://postgres@127.0.0.1:{port}/x",
            "kafka": f"127.0.0.1:{port}"}[backend.name]
    with pytest.raises(ConnectionError, match=f"cannot reach .* at {down}.* after"):
        run(backend.module.connect(down), timeout=20)


def test_in_memory_leases_expire_and_acks_after_expiry_change_nothing():
    async def scenario():
        broker = message_queues_in_memory.InMemoryBroker(lease=0.05)
        slow = await broker.consumer("coaching.entries", "coaches", "slow")
        fast = await broker.consumer("coaching.entries", "coaches", "fast")
        await broker.publish("coaching.entries", b"entry-1")
        [first] = await slow.receive()
        [second] = await fast.receive(timeout=5.0)  # waits out the slow one's lease
        await slow.ack([first])  # too late: it belongs to fast now
        await slow.close()
        redelivered = await fast.receive(timeout=0.01)
        await fast.ack([second])
        return first, second, redelivered

    first, second, redelivered = run(scenario())
    assert (first.deliveries, second.deliveries) == (1, 2)
    assert second.body == first.body and redelivered == []


def test_in_memory_a_topic_without_groups_drops_what_is_published():
    async def scenario():
        broker = message_queues_in_memory.InMemoryBroker()
        await broker.publish("coaching.entries", b"nobody listens")
        reader = await broker.consumer("coaching.entries", "late", "reader")
        return await reader.receive(timeout=0.01)

    assert run(scenario()) == []


def test_ids_are_unique_per_backend_message(queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        consumer = await broker.consumer(backend.topic, backend.group(), "reader")
        await backend.settled([consumer])
        for n in range(10):
            await broker.publish(backend.topic, str(n).encode())
        got = await collect(consumer, 10)
        await consumer.ack(got)
        await consumer.close()
        await broker.close()
        return got

    got = run(scenario())
    assert len({m.id for m in got}) == 10
    assert all(isinstance(m.id, str) for m in got)


@pytest.mark.parametrize("module", [
    "message_queues_redis", "message_queues_rabbitmq", "message_queues_nats",
    "message_queues_postgres", "message_queues_kafka", "message_routing_rabbitmq",
    "message_routing_nats", "message_routing_kafka", "message_persistence_outbox_postgres"])
def test_a_demo_without_its_server_says_which_variable_to_set_and_fails(
        module, monkeypatch, capsys):
    import importlib

    port = free_port()
    for variable, url in [("REDIS_URL", f"redis://127.0.0.1:{port}/0"),
                          ("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/"),
                          ("NATS_URL", f"nats://127.0.0.1:{port}"),
                          ("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x"),
                          ("KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")]:
        monkeypatch.setenv(variable, url)
    main = importlib.import_module(f"snippets.messaging.{module}").main
    assert run(main(), timeout=30) == 1  # the exit status of the script
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(r"Set [A-Z_]+ to .* you may write to\.", captured.err)
    assert f"127.0.0.1:{port}" in captured.err


def test_publish_many_keeps_order_and_refuses_the_whole_batch_for_one_bad_body(
        queue_backend: Backend):
    backend = queue_backend

    async def scenario():
        broker = await backend.connect()
        consumer = await broker.consumer(backend.topic, backend.group(), "reader")
        await backend.settled([consumer])
        with pytest.raises(TypeError, match="must be bytes, not str"):
            await broker.publish_many(backend.topic, [b"never-1", "not bytes", b"never-2"])
        await broker.publish_many(backend.topic, [f"entry-{n}".encode() for n in range(50)])
        got = await collect(consumer, 50, ack=True)
        got += await consumer.receive(timeout=0.3)
        await consumer.close()
        await broker.close()
        return [m.body.decode() for m in got]

    bodies = run(scenario())
    expected = [f"entry-{n}" for n in range(50)]
    assert sorted(bodies) == sorted(expected)  # nothing of the refused batch
    if backend.ordered:
        assert bodies == expected


CONTENDING_CONSUMERS = """
    import ast, asyncio, json, sys
    from snippets.messaging import (message_queues_nats, message_queues_postgres,
        message_queues_rabbitmq, message_queues_redis)

    name, url, options, topic, group, process = sys.argv[1:]
    module = {"redis": message_queues_redis, "rabbitmq": message_queues_rabbitmq,
              "nats": message_queues_nats, "postgres": message_queues_postgres}[name]
    options = ast.literal_eval(options)

    async def consume(index, handled, go):
        broker = await module.connect(url, **options)  # a connection of its own
        consumer = await broker.consumer(topic, group, f"p{process}-c{index}")
        await go.wait()
        idle = 0
        while idle < 3:  # stop after three empty receives in a row
            batch = await consumer.receive(max_messages=20, timeout=1.0)
            idle = 0 if batch else idle + 1
            for message in batch:
                handled.append(message.body.decode())
                await asyncio.sleep(0)  # a real handler awaits I/O here
            await consumer.ack(batch)
        await consumer.close()
        await broker.close()

    async def main():
        lists, go = [[] for _ in range(3)], asyncio.Event()
        tasks = [asyncio.create_task(consume(i, lists[i], go)) for i in range(3)]
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # all processes start together
        go.set()
        await asyncio.gather(*tasks)
        print(json.dumps(lists), flush=True)

    asyncio.run(main())
"""


@pytest.mark.parametrize("name", ["redis", "rabbitmq", "nats", "postgres"])
def test_nine_consumers_in_three_processes_handle_two_thousand_jobs_once_each(
        name: str, request: pytest.FixtureRequest):
    """Real contention: three processes of three consumers, each consumer on its own
    connection, compete for 2,000 jobs published before they start. The lease is a minute,
    so no job may come back by expiry: every duplicate would be two consumers holding the
    same job at once. Every job is handled, none twice, and every consumer gets work."""
    backend = make_backend(name, request)
    if "lease" in backend.options:
        backend.options = {**backend.options, "lease": 60.0}
    group, jobs = backend.group(), 2000

    async def publish():
        broker = await backend.connect()
        await broker.subscribe(backend.topic, group)
        for start in range(0, jobs, 500):
            await broker.publish_many(
                backend.topic, [f"job-{n}".encode() for n in range(start, start + 500)])
        await broker.close()

    run(publish(), timeout=120)
    script = textwrap.dedent(CONTENDING_CONSUMERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen(
        [sys.executable, "-c", script, name, backend.url, repr(backend.options),
         backend.topic, group, str(p)], cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE) for p in range(3)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            child.stdin.write("go\n")
            child.stdin.close()
        outputs = [child.stdout.read() for child in children]
        for child in children:
            child.wait(240)
    finally:
        for child in children:
            if child.poll() is None:
                kill(child)
    assert [child.returncode for child in children] == [0, 0, 0]
    per_consumer = [handled for out in outputs for handled in json.loads(out)]
    every = [job for handled in per_consumer for job in handled]
    duplicates = len(every) - len(set(every))
    assert duplicates == 0, f"{duplicates} jobs were handled twice"
    assert sorted(every) == sorted(f"job-{n}" for n in range(jobs))
    assert sum(1 for handled in per_consumer if handled) >= 6, [len(h) for h in per_consumer]
