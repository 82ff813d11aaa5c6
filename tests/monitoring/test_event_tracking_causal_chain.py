"""Tests of the tool that rebuilds one request's causal chain from JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.monitoring.event_tracking_causal_chain import build, load, main, render
from snippets.monitoring.event_tracking_correlation import (
    CorrelatedBus,
    JsonFormatter,
    Message,
    counter_ids,
)


def multi_hop_logs() -> list[str]:
    """Run a real four-hop flow with a failure and a second request; return its log lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.monitoring.chain")
    log.handlers[:], log.propagate = [handler], False
    log.setLevel(logging.INFO)
    bus = CorrelatedBus(new_id=counter_ids(), logger=log)

    async def tracker(message: Message) -> None:
        await bus.publish("GoalProgressed", {})
        await bus.publish("StreakExtended", {})

    async def coach(message: Message) -> None:
        await bus.publish("NudgeSent", {})

    async def mood(message: Message) -> None:
        raise TimeoutError("model endpoint did not answer")

    async def reflection(message: Message) -> None:
        await bus.publish("ReflectionQueued", {})

    bus.subscribe("EntryWritten", "goal-tracker", tracker)
    bus.subscribe("EntryWritten", "mood-agent", mood)
    bus.subscribe("GoalProgressed", "coach", coach)
    bus.subscribe("NudgeSent", "reflection", reflection)

    async def scenario():
        await bus.publish("EntryWritten", {}, correlation_id="req-1")
        await bus.publish("GoalSet", {}, correlation_id="req-2")
        await bus.drain()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    log.handlers[:] = []
    return stream.getvalue().splitlines()


def test_the_tree_of_a_real_multi_hop_flow_shows_who_published_what():
    records, skipped = load(multi_hop_logs())
    assert skipped == 0
    assert render(build(records, "req-1")) == [
        "m-01 EntryWritten",
        "├─ goal-tracker handled",
        "│  ├─ m-03 GoalProgressed",
        "│  │  └─ coach handled",
        "│  │     └─ m-05 NudgeSent",
        "│  │        └─ reflection handled",
        "│  │           └─ m-06 ReflectionQueued",
        "│  └─ m-04 StreakExtended",
        "└─ mood-agent FAILED TimeoutError: model endpoint did not answer",
    ]
    assert render(build(records, "req-2")) == ["m-02 GoalSet"]


def record(mid, cause=None, event="published", **more):
    r = {"event": event, "type": "T", "message_id": mid, "correlation_id": "c"}
    return r | ({"causation_id": cause} if cause else {}) | more


def test_a_missing_cause_a_redelivery_a_duplicate_publish_and_generated_ids_are_named():
    records = [record("a", generated=["message_id"], event="ids_generated"),
               record("a", event="received"),
               record("b", "a"), record("b", "a"),
               record("c", "zz"),
               record("d", "a", event="received"), record("d", "a", event="received")]
    assert render(build(records, "c")) == [
        "a T  [generated message_id]",
        "├─ b T  [published 2 times]",
        "└─ d T  [delivered 2 times]",
        "c T  [caused by zz (not in these logs)]",
    ]


def test_a_causation_cycle_is_reported_and_drawn_once():
    records = [record("a", "b"), record("b", "a"), record("r")]
    assert render(build(records, "c")) == [
        "r T",
        "cycle: a T is its own ancestor",
        "a T",
        "└─ b T",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.none() | st.integers(0, 14)), max_size=30))
def test_every_message_appears_exactly_once_whatever_the_causation_graph(edges):
    records = [record(f"m{m}", f"m{c}" if c is not None else None) for m, c in edges]
    lines = render(build(records, "c"))
    drawn = [line.split("─ ")[-1].split()[0] for line in lines if not line.startswith("cycle")]
    assert sorted(drawn) == sorted({f"m{m}" for m, _ in edges})


def test_lines_that_are_not_json_records_are_skipped_and_counted():
    lines = ["plain text", "[1, 2]", '{"no": "ids"}', "", json.dumps(record("a"))]
    records, skipped = load(lines)
    assert [r["message_id"] for r in records] == ["a"]
    assert skipped == 3


def test_the_command_line_lists_requests_and_draws_one(tmp_path, capsys):
    path = tmp_path / "app.log"
    path.write_text("\n".join(multi_hop_logs() + ["not json"]) + "\n")
    assert main([str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["req-1        5 messages, 1 failed handlers",
                                "req-2        1 messages, 0 failed handlers"]
    assert "skipped 1 lines" in err
    assert main([str(path), "-c", "req-1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "m-01 EntryWritten"


def test_an_unknown_request_exits_1_and_names_it(tmp_path, capsys):
    path = tmp_path / "app.log"
    path.write_text("\n".join(multi_hop_logs()))
    assert main([str(path), "--correlation-id", "req-404"]) == 1
    assert "no message with correlation_id 'req-404'" in capsys.readouterr().err


def test_logs_can_come_from_standard_input(capsys):
    stdin = io.StringIO("\n".join(multi_hop_logs()))
    assert main(["-", "-c", "req-2"], stdin=stdin) == 0
    assert capsys.readouterr().out == "m-02 GoalSet\n"


def test_without_files_it_draws_the_sample(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "│  └─ m-02 GoalProgressed  [delivered 2 times]" in out
    assert out[-1] == "m-09 ReflectionQueued  [caused by m-08 (not in these logs)]"
