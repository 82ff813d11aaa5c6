"""Loopback throughput and latency of the chapter's queue pipelines on each engine.

Starts its own private engines with the helpers of ``tests/engines.py`` (the
pytest fixtures cannot be used outside pytest), then, per engine:

* burst: publish N messages with the module's ``publish_many`` and consume
  them with one consumer (``receive`` + ``ack`` in batches), timed from the
  first publish to the last ack;
* paced: publish one message at a time with ``publish``, waiting for it to
  be received before the next, and report p50 / p99 publish-to-receive latency;
* raw: the same burst done with the bare client calls, no module, as the
  reference the module's pipeline is compared with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from tests.bench import support
from tests.engines import Engine, _nats, _postgres, _rabbitmq, _redis, _tansu


@contextlib.contextmanager
def running_engines(names: tuple[str, ...] = ("redis", "postgres", "rabbitmq", "nats", "kafka")
                    ) -> Iterator[dict[str, str]]:
    """Start the named engines; yield their URLs; stop them all on the way out."""
    dirs: list[Path] = []
    started: list[Engine] = []
    epmd = None
    try:
        urls = {}
        for name in names:
            if name == "rabbitmq":
                engine, epmd = _rabbitmq(dirs)
                started.append(engine.start(timeout=90))
            else:
                make = {"redis": _redis, "postgres": _postgres, "nats": _nats, "kafka": _tansu}[name]
                started.append(make(dirs).start())
            urls[name] = started[-1].url
        yield urls
    finally:
        for engine in reversed(started):
            engine.stop(timeout=60)
        if epmd is not None:
            epmd.terminate()
            epmd.wait(10)
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the measurements
BODY = b"x" * 88  # the size the reference figures in shared/notes used
BATCH = 100
BURST = {"redis": 20_000, "postgres": 20_000, "rabbitmq": 4_000, "nats": 10_000, "kafka": 10_000}
PACED = 300
RUNS = 5  # bursts of each kind, alternated; medians are kept
TIME_LIMIT = 20.0  # seconds for any one run; a run that takes longer fails loudly


def module_for(name: str):
    from snippets.messaging import (
        message_queues_kafka,
        message_queues_nats,
        message_queues_postgres,
        message_queues_rabbitmq,
        message_queues_redis,
    )

    return {"redis": message_queues_redis, "postgres": message_queues_postgres,
            "rabbitmq": message_queues_rabbitmq, "nats": message_queues_nats,
            "kafka": message_queues_kafka}[name]


def options_for(name: str) -> dict:
    return {"kafka": {"session_timeout_ms": 2000, "partitions": 1},
            "rabbitmq": {"prefetch": 500}}.get(name, {})


async def pipeline_burst(name: str, url: str, count: int) -> float:
    """Messages per second through publish_many -> receive -> ack, one consumer."""
    module = module_for(name)
    broker = await module.connect(url, **options_for(name))
    topic = f"bench.burst{time.monotonic_ns()}"
    consumer = await broker.consumer(topic, "bench", "c1")
    if name == "kafka":
        while not consumer.client.assignment():
            await consumer.receive(timeout=0.05)
    done = asyncio.Event()

    async def consume() -> None:
        seen = 0
        while seen < count:
            batch = await consumer.receive(max_messages=BATCH * 5, timeout=1.0)
            await consumer.ack(batch)
            seen += len(batch)
        done.set()

    start = time.perf_counter()
    task = asyncio.create_task(consume())
    for _ in range(count // BATCH):
        await broker.publish_many(topic, [BODY] * BATCH)
    await asyncio.wait_for(task, TIME_LIMIT)
    elapsed = time.perf_counter() - start
    await consumer.close()
    await broker.close()
    return count / elapsed


async def paced_latency(name: str, url: str, count: int) -> tuple[float, float]:
    """p50 and p99 of publish-to-receive, one message at a time, in milliseconds."""
    module = module_for(name)
    broker = await module.connect(url, **options_for(name))
    topic = f"bench.paced{time.monotonic_ns()}"
    consumer = await broker.consumer(topic, "bench", "c1")
    if name == "kafka":
        while not consumer.client.assignment():
            await consumer.receive(timeout=0.05)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await broker.publish(topic, BODY)
        got = []
        while not got:
            got = await asyncio.wait_for(consumer.receive(max_messages=1, timeout=1.0), 5)
        samples.append((time.perf_counter() - start) * 1000)
        await consumer.ack(got)
    await consumer.close()
    await broker.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def raw_burst(name: str, url: str, count: int) -> float:
    """The same burst with the bare client calls: the reference for the pipeline."""
    start = 0.0
    if name == "redis":
        import redis.asyncio as redis

        client = redis.from_url(url)
        stream = f"raw{time.monotonic_ns()}"
        await client.xgroup_create(stream, "g", id="$", mkstream=True)

        async def consume() -> None:
            seen = 0
            while seen < count:
                reply = await client.xreadgroup("g", "c", {stream: ">"}, count=500, block=1000)
                ids = [i for i, _ in reply[0][1]] if reply else []
                if ids:
                    await client.xack(stream, "g", *ids)
                seen += len(ids)

        start = time.perf_counter()
        task = asyncio.create_task(consume())
        for _ in range(count // BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(BATCH):
                    pipe.xadd(stream, {"body": BODY})
                await pipe.execute()
        await asyncio.wait_for(task, TIME_LIMIT)
        await client.aclose()
    elif name == "postgres":
        import psycopg

        pub = await psycopg.AsyncConnection.connect(url, autocommit=True)
        sub = await psycopg.AsyncConnection.connect(url, autocommit=True)
        table = f"raw{time.monotonic_ns()}"
        await pub.execute(f"CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY "
                          "PRIMARY KEY, body bytea)")

        async def consume() -> None:
            seen = 0
            while seen < count:
                rows = await (await sub.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id "
                    "LIMIT 500 FOR UPDATE SKIP LOCKED) RETURNING id, body")).fetchall()
                seen += len(rows)
                if not rows:
                    await asyncio.sleep(0.001)

        start = time.perf_counter()
        task = asyncio.create_task(consume())
        for _ in range(count // BATCH):
            async with pub.transaction():
                await pub.execute(f"INSERT INTO {table} (body) SELECT unnest(%s::bytea[])",
                                  ([BODY] * BATCH,))
        await asyncio.wait_for(task, TIME_LIMIT)
        await pub.close()
        await sub.close()
    elif name == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        queue = await channel.declare_queue(f"raw{time.monotonic_ns()}", durable=True)
        sub_channel = await connection.channel()
        await sub_channel.set_qos(prefetch_count=500)
        received = 0
        finished = asyncio.Event()

        async def on_message(message) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == count:
                finished.set()

        await (await sub_channel.get_queue(queue.name)).consume(on_message)
        start = time.perf_counter()
        for _ in range(count // BATCH):
            await asyncio.gather(*(channel.default_exchange.publish(
                aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.name) for _ in range(BATCH)))
        await asyncio.wait_for(finished.wait(), TIME_LIMIT)
        await connection.close()
    elif name == "nats":
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        subject = f"raw.{time.monotonic_ns()}"
        await js.add_stream(name=subject.replace(".", "_").upper(), subjects=[subject])
        psub = await js.pull_subscribe(subject, durable="raw")

        async def consume() -> None:
            seen = 0
            while seen < count:
                try:
                    msgs = await psub.fetch(500, timeout=1)
                except TimeoutError:
                    continue
                for msg in msgs:
                    await msg.ack()
                seen += len(msgs)

        start = time.perf_counter()
        task = asyncio.create_task(consume())
        for _ in range(count // BATCH):
            await asyncio.gather(*(js.publish(subject, BODY) for _ in range(BATCH)))
        await asyncio.wait_for(task, TIME_LIMIT)
        await nc.close()
    else:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        topic = f"raw{time.monotonic_ns()}"
        producer = AIOKafkaProducer(bootstrap_servers=url, acks="all")
        await producer.start()
        await producer.send_and_wait(topic, b"warm-up")  # creates the topic
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=url, group_id="raw",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    session_timeout_ms=2000, heartbeat_interval_ms=500,
                                    fetch_max_wait_ms=20)
        await consumer.start()

        async def consume() -> None:
            seen = -1  # the warm-up record
            while seen < count:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                seen += sum(map(len, batches.values()))
                if batches:
                    await consumer.commit()

        start = time.perf_counter()
        task = asyncio.create_task(consume())
        for _ in range(count // BATCH):
            pending = [await producer.send(topic, BODY) for _ in range(BATCH)]
            await asyncio.gather(*pending)
        await asyncio.wait_for(task, TIME_LIMIT)
        await consumer.stop()
        await producer.stop()
    return count / (time.perf_counter() - start)


def paired_runs(runs: int, name: str, url: str, count: int) -> tuple[float, float, float]:
    """Median bare and pipeline bursts and the median of their paired ratios.

    Bare and pipeline run alternately, so a change in the machine's load hits
    both sides of a pair alike; the median of the pairs' ratios is what one
    busy moment moves least (a best-of-N compares two lucky moments instead).
    """
    raws, pipelines = [], []
    for _ in range(runs):
        raws.append(asyncio.run(raw_burst(name, url, count)))
        pipelines.append(asyncio.run(pipeline_burst(name, url, count)))
    ratio = statistics.median(p / r for p, r in zip(pipelines, raws))
    return statistics.median(raws), statistics.median(pipelines), ratio


def main() -> None:
    load = os.getloadavg()[0]
    rows = []
    with running_engines() as urls:
        for name in ("redis", "postgres", "rabbitmq", "nats", "kafka"):
            url, count = urls[name], BURST[name]
            raw, pipeline, ratio = paired_runs(RUNS, name, url, count)
            p50, p99 = asyncio.run(paced_latency(name, url, PACED))
            label = {"redis": "Redis Streams", "postgres": "PostgreSQL (SKIP LOCKED)",
                     "rabbitmq": "RabbitMQ (confirms, persistent)", "nats": "NATS JetStream",
                     "kafka": "Kafka protocol (Tansu)"}[name]
            rows.append([label, f"{count:,}", f"{pipeline:,.0f}", f"{raw:,.0f}",
                         f"{ratio:.0%}", f"{p50:.2f}", f"{p99:.2f}"])
            print(rows[-1], flush=True)
    path = support.write(
        "messaging/message_brokers",
        columns=["Engine", "Burst size", "Chapter pipeline (msg/s)", "Bare client (msg/s)",
                 "Pipeline / bare", "Paced p50 (ms)", "Paced p99 (ms)"],
        rows=rows,
        command="make bench BENCH=messaging",
        note=f"{len(BODY)}-byte messages on loopback, one publisher and one consumer in one "
             f"asyncio process, batches of {BATCH} published with publish_many and received "
             f"up to {BATCH * 5} at a time; {RUNS} bursts of each, bare and pipeline alternated: "
             f"medians, and the median of the {RUNS} paired ratios; "
             f"latency over {PACED} messages sent one at a time, publish to receive. "
             f"Load average {load:.1f} when the run started: on a busy machine every "
             "figure is lower, the ratios less so.",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
