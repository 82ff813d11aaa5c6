"""Trimming Redis Streams against a real Redis: the demo, exact versus approximate MAXLEN,
MINID by age, a group whose unread and pending entries were trimmed, and bad input."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from snippets.messaging.retention_and_compaction_redis import (
    append,
    connect,
    main,
    replay,
    trim_older_than,
)
from tests.engines import free_port
from tests.messaging.conftest import run

RECORDED = (Path(__file__).resolve().parents[2] / "docs" / "data" / "outputs" / "messaging"
            / "retention_and_compaction_redis.txt")


def test_the_demo_prints_what_the_page_shows(redis_server, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert run(main()) == 0
    assert capsys.readouterr().out == RECORDED.read_text()


@pytest.mark.parametrize("added", [99, 100, 101, 250, 1000])
def test_approximate_maxlen_keeps_at_least_the_cap_and_exact_keeps_exactly_it(
        redis_server, added):
    async def scenario():
        client = await connect(redis_server.url)
        approx, exact = f"approx.{uuid.uuid4().hex}", f"exact.{uuid.uuid4().hex}"
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(added):
                pipe.xadd(approx, {"body": b"x"}, maxlen=100, approximate=True)
                pipe.xadd(exact, {"body": b"x"}, maxlen=100, approximate=False)
            await pipe.execute()
        await append(client, approx, b"last", maxlen=100)
        await append(client, exact, b"last", maxlen=100, exact=True)
        lengths = await client.xlen(approx), await client.xlen(exact)
        await client.delete(approx, exact)
        await client.aclose()
        return lengths

    approx, exact = run(scenario())
    assert exact == min(added + 1, 100)
    assert min(added + 1, 100) <= approx < 100 + 100  # never fewer; at most a node more


def test_minid_trims_by_age_and_a_new_reader_sees_only_what_is_left(redis_server):
    async def scenario():
        client = await connect(redis_server.url)
        stream = f"age.{uuid.uuid4().hex}"
        for second in range(1, 11):
            await client.xadd(stream, {"body": b"x"}, id=f"{second * 1000}-{0}")
            await client.xadd(stream, {"body": b"y"}, id=f"{second * 1000}-{1}")
        dropped = await trim_older_than(client, stream, now_ms=10_000, max_age_ms=3_000)
        left = await replay(client, stream)
        await client.delete(stream)
        await client.aclose()
        return dropped, left

    dropped, left = run(scenario())
    assert dropped == 12  # seconds 1-6, two entries each
    assert left == [f"{s * 1000}-{i}" for s in range(7, 11) for i in (0, 1)]


def test_a_trim_skips_a_lagging_group_and_leaves_its_pending_ids_dangling(redis_server):
    async def scenario():
        client = await connect(redis_server.url)
        stream = f"lag.{uuid.uuid4().hex}"
        await client.xgroup_create(stream, "slow", id="0", mkstream=True)
        for n in range(1, 11):
            await client.xadd(stream, {"body": f"entry-{n}".encode()}, id=f"{n}-0")
        await client.xreadgroup("slow", "c1", {stream: ">"}, count=3)  # 1-3 pending
        await client.xtrim(stream, maxlen=5, approximate=False)      # 1-5 gone
        pending = await client.xpending_range(stream, "slow", "-", "+", 10)
        _, claimed, deleted = await client.xautoclaim(stream, "slow", "c2", 0)
        after_claim = (await client.xpending(stream, "slow"))["pending"]
        rest = await client.xreadgroup("slow", "c2", {stream: ">"}, count=10)
        await client.delete(stream)
        await client.aclose()
        return pending, claimed, deleted, after_claim, rest

    pending, claimed, deleted, after_claim, rest = run(scenario())
    assert [p["message_id"] for p in pending] == [b"1-0", b"2-0", b"3-0"]  # still listed
    assert claimed == [] and deleted == [b"1-0", b"2-0", b"3-0"]
    assert after_claim == 0  # XAUTOCLAIM removed the dangling ids from the pending list
    assert [i for i, _ in rest[0][1]] == [b"6-0", b"7-0", b"8-0", b"9-0", b"10-0"]  # 4, 5 skipped


def test_a_negative_age_is_refused_and_nothing_is_trimmed(redis_server):
    async def scenario():
        client = await connect(redis_server.url)
        stream = f"bad.{uuid.uuid4().hex}"
        await client.xadd(stream, {"body": b"x"}, id="1000-0")
        with pytest.raises(ValueError, match="max_age_ms must be >= 0"):
            await trim_older_than(client, stream, now_ms=5_000, max_age_ms=-1)
        left = await replay(client, stream)
        await client.delete(stream)
        await client.aclose()
        return left

    assert run(scenario()) == ["1000-0"]


def test_without_its_server_the_demo_says_which_variable_to_set_and_exits_1(
        monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    assert run(main()) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in err and "Set REDIS_URL" in err
