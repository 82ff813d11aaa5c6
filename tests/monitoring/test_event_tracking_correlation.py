"""Tests of correlation and causation ids in structured JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import pytest

from snippets.monitoring.event_tracking_correlation import (
    CorrelatedBus,
    JsonFormatter,
    Message,
    counter_ids,
    main,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


@pytest.fixture
def logged():
    """A bus whose JSON lines land in a buffer; returns (bus, records())."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(timestamps=False))
    log = logging.getLogger("test.monitoring.tracking")
    log.handlers[:], log.propagate = [handler], False
    log.setLevel(logging.INFO)
    bus = CorrelatedBus(new_id=counter_ids(), logger=log)

    def records() -> list[dict]:
        lines = stream.getvalue().splitlines()
        return [json.loads(line) for line in lines]  # every line must be one JSON object

    yield bus, records
    log.handlers[:] = []


def three_hops(bus: CorrelatedBus) -> None:
    async def tracker(message: Message) -> None:
        await bus.publish("GoalProgressed", {"sessions": 3})

    async def coach(message: Message) -> None:
        await bus.publish("NudgeSent", {"text": "keep going"})

    bus.subscribe("EntryWritten", "goal-tracker", tracker)
    bus.subscribe("GoalProgressed", "coach", coach)


def test_every_hop_carries_the_request_correlation_and_its_parent_as_causation(logged):
    bus, records = logged
    three_hops(bus)

    async def scenario():
        await bus.publish("EntryWritten", {"goal": "write daily"}, correlation_id="req-1")
        await bus.drain()

    run(scenario())
    published = [(r["type"], r["message_id"], r.get("causation_id"), r.get("handler"))
                 for r in records() if r["event"] == "published"]
    assert published == [("EntryWritten", "m-01", None, None),
                         ("GoalProgressed", "m-02", "m-01", "goal-tracker"),
                         ("NudgeSent", "m-03", "m-02", "coach")]
    assert {r["correlation_id"] for r in records()} == {"req-1"}
    handled = [(r["handler"], r["message_id"]) for r in records() if r["event"] == "handled"]
    assert sorted(handled) == [("coach", "m-02"), ("goal-tracker", "m-01")]


def test_concurrent_flows_never_mix_their_ids(logged):
    bus, records = logged
    barrier = asyncio.Barrier(2)

    async def slow_agent(message: Message) -> None:
        await barrier.wait()  # both flows are inside a handler at the same moment
        await bus.publish("MoodScored", {"entry": message.payload["entry"]})

    bus.subscribe("EntryWritten", "mood-agent", slow_agent)

    async def scenario():
        await bus.publish("EntryWritten", {"entry": "a"}, correlation_id="req-a")
        await bus.publish("EntryWritten", {"entry": "b"}, correlation_id="req-b")
        await bus.drain()

    run(scenario())
    by_id = {r["message_id"]: r for r in records() if r["event"] == "published"}
    scored = [r for r in by_id.values() if r["type"] == "MoodScored"]
    assert len(scored) == 2
    for record in scored:
        parent = by_id[record["causation_id"]]
        assert record["correlation_id"] == parent["correlation_id"]
    assert {r["correlation_id"] for r in scored} == {"req-a", "req-b"}


def test_a_message_without_ids_still_flows_and_is_recorded_as_generated(logged):
    bus, records = logged
    seen: list[Message] = []

    async def handler(message: Message) -> None:
        seen.append(message)
        await bus.publish("GoalProgressed", {})

    bus.subscribe("EntryWritten", "goal-tracker", handler)

    async def scenario():
        delivered = await bus.deliver(Message("EntryWritten", {"goal": "run"}, {}))
        await bus.drain()
        return delivered

    delivered = run(scenario())
    assert [m.payload for m in seen] == [{"goal": "run"}]
    assert delivered.headers["message_id"] == "m-01"
    assert delivered.headers["correlation_id"] == "m-02"
    assert delivered.headers["ids_generated"] == "message_id,correlation_id"
    warning = next(r for r in records() if r["event"] == "ids_generated")
    assert warning["level"] == "WARNING"
    assert warning["generated"] == ["message_id", "correlation_id"]
    child = next(r for r in records() if r["type"] == "GoalProgressed")
    assert (child["correlation_id"], child["causation_id"]) == ("m-02", "m-01")


def test_a_message_that_keeps_a_valid_correlation_only_gets_a_message_id(logged):
    bus, records = logged

    async def scenario():
        return await bus.deliver(Message("EntryWritten", {}, {"correlation_id": "req-9"}))

    delivered = run(scenario())
    assert delivered.headers["correlation_id"] == "req-9"
    assert delivered.headers["ids_generated"] == "message_id"


@pytest.mark.parametrize("hostile", [
    'req-1"}\n{"level": "INFO", "msg": "forged"',
    "x" * 10_000,
    "req 1",
    "",
    "réq-1",
])
def test_hostile_or_malformed_ids_are_replaced_and_cannot_forge_log_lines(logged, hostile):
    bus, records = logged

    async def scenario():
        return await bus.deliver(Message("EntryWritten", {}, {
            "message_id": "ok-1", "correlation_id": hostile, "causation_id": hostile}))

    delivered = run(scenario())
    assert delivered.headers["correlation_id"] == "m-01"
    assert "causation_id" not in delivered.headers
    parsed = records()  # raises if a line is not exactly one JSON object
    assert all(r.get("msg") != "forged" for r in parsed)
    if hostile:
        warning = next(r for r in parsed if r["event"] == "ids_generated")
        assert warning["rejected"]["correlation_id"] == repr(hostile[:40])
        assert len(json.dumps(warning)) < 1_000  # a 10 KB id does not blow up the log


def test_an_invalid_request_id_at_the_edge_is_replaced_and_reported(logged):
    bus, records = logged

    async def scenario():
        return await bus.publish("EntryWritten", {}, correlation_id="bad id")

    message = run(scenario())
    assert message.headers["correlation_id"] == "m-02"
    warning = next(r for r in records() if r["event"] == "ids_generated")
    assert warning["rejected"] == {"correlation_id": "'bad id'"}


def test_header_names_that_clash_with_log_record_fields_do_not_break_logging(logged):
    bus, records = logged

    async def scenario():
        return await bus.deliver(Message("EntryWritten", {}, {
            "msg": "x", "levelname": "y", "message_id": "ok-1", "correlation_id": "req-1"}))

    message = run(scenario())
    assert message.headers["msg"] == "x"
    assert [r["event"] for r in records()] == ["received"]


def test_the_formatter_adds_utc_time_extras_and_the_exception_and_omits_nones():
    formatter = JsonFormatter()
    try:
        raise ValueError("bad entry")
    except ValueError:
        import sys
        record = logging.LogRecord("coaching", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   sys.exc_info())
    record.attempt = 2
    record.empty = None
    doc = json.loads(formatter.format(record))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", doc["ts"])
    assert doc["msg"] == "failed x" and doc["attempt"] == 2 and "empty" not in doc
    assert doc["error"] == "ValueError: bad entry"


def test_default_ids_are_random_uuids():
    bus = CorrelatedBus()
    ids = {bus.new_id() for _ in range(100)}
    assert len(ids) == 100 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_failing_handler_is_logged_with_its_error_and_the_others_still_run(logged):
    bus, records = logged

    async def broken(message: Message) -> None:
        raise TimeoutError("model endpoint did not answer")

    async def fine(message: Message) -> None:
        pass

    bus.subscribe("EntryWritten", "mood-agent", broken)
    bus.subscribe("EntryWritten", "goal-tracker", fine)

    async def scenario():
        await bus.publish("EntryWritten", {}, correlation_id="req-1")
        await bus.drain()

    run(scenario())
    outcomes = {r["handler"]: (r["event"], r.get("error")) for r in records()
                if r["event"] in ("handled", "failed")}
    assert outcomes == {"mood-agent": ("failed", "TimeoutError: model endpoint did not answer"),
                        "goal-tracker": ("handled", None)}


def test_the_demo_prints_one_json_record_per_line_with_both_flows(capsys):
    asyncio.run(main())
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["correlation_id"] for r in records} == {"req-7f3a", "m-05"}
    assert sum(r["event"] == "ids_generated" for r in records) == 1
    assert sum(r["event"] == "failed" for r in records) == 2
