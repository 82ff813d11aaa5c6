"""The queue backends of this chapter, so that one test can run against each of them.

``queue_backend`` is parametrized over the in-memory default and the five
engines; an engine is started (through the fixtures of ``tests/engines.py``)
only when a test asks for it. Every test gets fresh topic and group names,
so tests sharing a session-wide server never see each other's messages.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from snippets.messaging import (
    message_queues_in_memory,
    message_queues_kafka,
    message_queues_nats,
    message_queues_postgres,
    message_queues_rabbitmq,
    message_queues_redis,
)

ROOT = Path(__file__).resolve().parents[2]
LEASE = 0.5  # seconds; short, so that lease-based redelivery is seen quickly


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run a scenario with a hard deadline: no test may hang."""
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


@dataclass
class Backend:
    """One implementation of the chapter's queue calls, and how to reach it."""

    name: str
    module: ModuleType
    url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ordered: bool = True  # one consumer sees messages in publish order
    counts_deliveries: bool = True
    topic: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.entries")
    _groups: itertools.count = field(default_factory=lambda: itertools.count(1))

    def group(self) -> str:
        return f"g{next(self._groups)}-{uuid.uuid4().hex[:6]}"

    async def connect(self) -> Any:
        if self.module is message_queues_in_memory:
            return message_queues_in_memory.InMemoryBroker(**self.options)
        return await self.module.connect(self.url, **self.options)

    async def settled(self, consumers: list[Any], timeout: float = 20.0) -> None:
        """Wait until a Kafka group has spread all partitions over ``consumers``."""
        if self.module is not message_queues_kafka:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions = self.options.get("partitions", 3)
        while loop.time() < deadline:
            owned = [c.client.assignment() for c in consumers]
            union = set().union(*owned)
            if all(owned) and len(union) == sum(map(len, owned)) == partitions:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the group did not settle in {timeout} s: {owned}")

    def child(self, script: str, *args: str) -> subprocess.Popen[str]:
        """Run ``script`` in a fresh interpreter that imports the snippets: a process to kill."""
        code = textwrap.dedent(script)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([sys.executable, "-c", code, self.name, self.url or "",
                                 repr(self.options), self.topic, *args],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL: no cleanup, no goodbye to the broker."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


ENGINES = ["memory", "redis", "rabbitmq", "nats", "postgres", "kafka"]


def make_backend(name: str, request: pytest.FixtureRequest) -> Backend:
    if name == "memory":
        return Backend(name, message_queues_in_memory, options={"lease": LEASE})
    if name == "redis":
        url = request.getfixturevalue("redis_server").url
        return Backend(name, message_queues_redis, url, {"lease": LEASE})
    if name == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_server").url
        return Backend(name, message_queues_rabbitmq, url)
    if name == "nats":
        url = request.getfixturevalue("nats_server").url
        return Backend(name, message_queues_nats, url, {"lease": LEASE})
    if name == "postgres":
        url = request.getfixturevalue("postgres_db")
        return Backend(name, message_queues_postgres, url, {"lease": LEASE})
    url = request.getfixturevalue("kafka_server").url
    return Backend(name, message_queues_kafka, url, {"session_timeout_ms": 2000},
                   ordered=False, counts_deliveries=False)


@pytest.fixture(params=ENGINES)
def queue_backend(request: pytest.FixtureRequest) -> Backend:
    """Each queue backend in turn: in memory, Redis, RabbitMQ, NATS, PostgreSQL, Kafka."""
    return make_backend(request.param, request)


@pytest.fixture(params=[e for e in ENGINES if e != "memory"])
def engine_backend(request: pytest.FixtureRequest) -> Backend:
    """Each real engine in turn (what survives a process being killed)."""
    return make_backend(request.param, request)


# Dedicated engines that a test may restart (tests/conftest.py imports the shared ones).
from tests.engines import postgres_factory, rabbitmq_factory  # noqa: F401
