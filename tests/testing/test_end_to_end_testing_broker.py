"""The coaching flow across Redis Streams: the page's test, the shared group, lag-based waiting."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from snippets.testing.end_to_end_testing_broker import (
    MORNING,
    AppSharingOneGroup,
    CoachingApp,
    ManualClock,
    RedisStreamsBus,
    SeededIds,
    await_until,
    main,
)
from snippets.testing.end_to_end_testing_broker import (
    test_an_entry_flows_through_every_agent_on_redis as page_test,
)
from tests.engines import free_port

RECORDED = Path(__file__).resolve().parents[2] / "docs/data/outputs/testing"
namespaces = itertools.count(1)


@pytest.fixture
def redis_url(redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def test_the_page_test_passes_on_redis(redis_url):
    page_test(CoachingApp, namespace=f"ok{next(namespaces)}")


def test_agents_sharing_one_group_are_caught(redis_url):
    with pytest.raises(AssertionError):
        page_test(AppSharingOneGroup, namespace=f"shared{next(namespaces)}")


def test_caught_up_sees_unread_and_unacknowledged_entries(redis_url):
    async def scenario():
        client = redis.from_url(redis_url, decode_responses=True)
        bus = RedisStreamsBus(client, f"lag{next(namespaces)}")
        release = asyncio.Event()
        handled: list[dict] = []

        async def slow(event: dict) -> None:
            await release.wait()
            handled.append(event)

        await bus.subscribe("journal.entry_written", slow, "slow")
        await bus.publish("journal.entry_written", {"n": 1})
        await bus.publish("journal.entry_written", {"n": 2})
        states = [await bus.caught_up()]
        release.set()
        await await_until(bus.caught_up, what="the slow group to catch up")
        await bus.close()
        return states, handled

    states, handled = run(scenario())
    assert states == [False] and handled == [{"n": 1}, {"n": 2}]


def test_a_failing_handler_is_recorded_and_its_entry_still_acknowledged(redis_url):
    async def scenario():
        client = redis.from_url(redis_url, decode_responses=True)
        bus = RedisStreamsBus(client, f"fail{next(namespaces)}")

        async def broken(event: dict) -> None:
            raise ValueError("cannot coach this")

        await bus.subscribe("coaching.mood_noted", broken, "broken")
        await bus.publish("coaching.mood_noted", {"mood": "calm"})
        await await_until(bus.caught_up, what="the entry to be acknowledged")
        await bus.close()
        return bus.failures

    assert run(scenario()) == ["broken: ValueError('cannot coach this')"]


def test_joining_an_existing_group_is_fine_but_a_key_that_is_not_a_stream_is_refused(redis_url):
    async def scenario():
        client = redis.from_url(redis_url, decode_responses=True)
        namespace = f"wrong{next(namespaces)}"
        bus = RedisStreamsBus(client, namespace)

        async def handler(event: dict) -> None:
            pass

        await bus.subscribe("a", handler, "g")
        await bus.subscribe("a", handler, "g")  # BUSYGROUP: join the group
        await client.set(f"{namespace}:b", "a plain string")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await bus.subscribe("b", handler, "g")
        value = await client.get(f"{namespace}:b")
        await bus.close()
        return value

    assert run(scenario()) == "a plain string"


def test_the_demo_matches_its_recorded_output(redis_url, capsys):
    assert main() == 0
    assert capsys.readouterr().out == (RECORDED / "end_to_end_testing_broker.txt").read_text()


def test_the_demo_says_how_to_point_it_at_redis_when_there_is_none(monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert main() == 1
    assert "Set REDIS_URL to a Redis you may write to." in capsys.readouterr().err


def test_an_entry_without_a_goal_or_distance_logs_no_progress(redis_url):
    async def scenario():
        client = redis.from_url(redis_url, decode_responses=True)
        namespace = f"quiet{next(namespaces)}"
        app = CoachingApp(RedisStreamsBus(client, namespace), ManualClock(MORNING), SeededIds(3))
        await app.start()
        await app.write_entry("ben", "Read a book, calm evening")
        await await_until(app.bus.caught_up, what="every group to catch up")
        progress = await client.xlen(f"{namespace}:goals.progress_logged")
        await app.bus.close()
        return progress, app.day["ben"]["moods"]

    assert run(scenario()) == (0, ["calm"])
