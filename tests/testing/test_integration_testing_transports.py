"""The page's transport suite, run against the in-memory default and five real engines."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from snippets.testing.integration_testing_transports import (  # noqa: F401 - connect is a fixture
    ADDRESSES,
    TESTS,
    LaxMemoryTransport,
    MemoryTransport,
    connect,
    decode,
    encode,
    main,
    nothing_arrives,
    open_transport,
    run_tests,
    transport_for,
)

RECORDED = Path(__file__).resolve().parents[2] / "docs/data/outputs/testing"
FIXTURES = {"redis": "redis_server", "postgres": "postgres_db", "rabbitmq": "rabbitmq_server",
            "nats": "nats_server", "kafka": "kafka_server"}


def engine_url(request: pytest.FixtureRequest, kind: str) -> str:
    value = request.getfixturevalue(FIXTURES[kind])
    return value if isinstance(value, str) else value.url


@pytest.fixture(autouse=True)
def engine_address(request, monkeypatch):
    """Give the page's own ``connect`` fixture the address of the engine it is about to open."""
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("connect") if callspec else None
    if kind in ADDRESSES:
        monkeypatch.setenv(ADDRESSES[kind], engine_url(request, kind))


@pytest.mark.parametrize("page_test", TESTS, ids=lambda t: t.__name__.removeprefix("test_"))
def test_every_transport_passes_the_same_suite(page_test, connect):  # noqa: F811 - the fixture
    page_test(connect)


def test_an_engine_without_an_address_is_skipped_with_the_variable_to_set(monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set NATS_URL to run the suite against nats"):
        transport_for("nats")


def test_the_lax_fake_is_caught_by_the_three_tests_about_the_wire():
    failed = {name: why for name, why in run_tests(functools.partial(open_transport, "lax-memory"))
              if why}
    assert failed == {
        "test_an_event_arrives_as_the_wire_carries_it": failed[
            "test_an_event_arrives_as_the_wire_carries_it"],
        "test_a_payload_the_wire_cannot_carry_is_refused_at_publish":
            "a datetime was published; no real broker can carry it",
        "test_a_subscriber_gets_a_copy_the_publisher_cannot_change": failed[
            "test_a_subscriber_gets_a_copy_the_publisher_cannot_change"],
    }
    assert "('run', 'rain')" in failed["test_an_event_arrives_as_the_wire_carries_it"]
    assert "'edited after publishing'" in failed[
        "test_a_subscriber_gets_a_copy_the_publisher_cannot_change"]


def test_the_in_memory_default_encodes_like_a_wire_and_the_lax_fake_does_not():
    async def scenario(transport):
        inbox = await transport.subscribe("c")
        event = {"tags": ("a",)}
        await transport.publish("c", event)
        return event, await inbox.next()

    sent, got = asyncio.run(scenario(MemoryTransport()))
    assert got == {"tags": ["a"]} and got is not sent
    sent, got = asyncio.run(scenario(LaxMemoryTransport()))
    assert got is sent


def test_encoding_refuses_nan_and_keeps_non_ascii_text_readable():
    assert encode({"text": "Müde"}) == '{"text": "Müde"}'.encode()
    assert decode(encode({"n": [1, None]})) == {"n": [1, None]}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode({"km": float("nan")})


def test_nothing_arrives_says_so_when_something_did():
    async def scenario():
        transport = MemoryTransport()
        inbox = await transport.subscribe("c")
        await transport.publish("c", {"entry_id": "e1"})
        return await nothing_arrives(inbox)

    assert asyncio.run(scenario()) is False


def test_two_kafka_transports_share_a_topic_that_either_may_create(kafka_server):
    async def scenario():
        first = await open_transport("kafka", kafka_server.url)
        second = await open_transport("kafka", kafka_server.url)
        inbox = await first.subscribe("coaching.shared.topic")
        await second.publish("coaching.shared.topic", {"entry_id": "e1"})  # already exists
        got = await inbox.next()
        await first.close()
        await second.close()
        return got

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == {"entry_id": "e1"}


def all_engines(request) -> dict[str, str]:
    return {var: engine_url(request, kind) for kind, var in ADDRESSES.items()}


def test_the_demo_runs_the_suite_everywhere_and_matches_the_recorded_output(
        request, monkeypatch, capsys):
    for var, url in all_engines(request).items():
        monkeypatch.setenv(var, url)
    main()
    out = capsys.readouterr().out
    assert out == (RECORDED / "integration_testing_transports.txt").read_text()
    assert out.count("6 passed, 0 failed") == 6


def test_the_demo_skips_engines_it_has_no_address_for(monkeypatch, capsys):
    for var in ADDRESSES.values():
        monkeypatch.delenv(var, raising=False)
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "memory      6 passed, 0 failed"
    assert lines[1] == "redis       skipped: set REDIS_URL to run the suite against redis"
    assert lines[6] == "lax-memory  3 passed, 3 failed"
