"""Tests of W3C trace context through message headers, with the OpenTelemetry SDK."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from snippets.monitoring.debugging_strategies_tracing import (
    Message,
    SequentialIds,
    TracedBroker,
    main,
    tree,
)


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    return tracer, TracedBroker(tracer), exporter


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def spans_by_name(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


def test_the_traceparent_header_is_the_send_span_and_the_consumer_is_its_child(traced):
    tracer, broker, exporter = traced
    seen: list[Message] = []

    async def handler(message):
        seen.append(message)

    broker.subscribe("coaching.entries", "goal-tracker", handler)

    async def scenario():
        with tracer.start_as_current_span("POST /entries", kind=SpanKind.SERVER):
            sent = await broker.send("coaching.entries", {"entry": 1}, {"message_id": "m-1"})
        await broker.drain()
        return sent

    sent = run(scenario())
    spans = spans_by_name(exporter)
    send, process = spans["send coaching.entries"], spans["process coaching.entries"]
    assert sent.headers == {"message_id": "m-1",
                            "traceparent": "00-00000000000000000000000000000001-0000000000000002-01"}
    assert process.context.trace_id == send.context.trace_id == 1
    assert process.parent.span_id == send.context.span_id
    assert process.parent.is_remote  # it came through the headers, not the call stack
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert process.attributes["messaging.destination.name"] == "coaching.entries"
    assert process.attributes["messaging.operation.type"] == "process"
    assert "coaching.trace_context" not in process.attributes
    assert seen[0].headers["traceparent"] == sent.headers["traceparent"]


def test_a_message_without_trace_context_is_processed_in_a_new_trace_marked_missing(traced):
    tracer, broker, exporter = traced
    handled = []

    async def handler(message):
        handled.append(message.body)

    broker.subscribe("coaching.entries", "goal-tracker", handler)

    async def scenario():
        await broker.send("coaching.entries", {"entry": 2}, traced=False)
        await broker.drain()

    run(scenario())
    [process] = exporter.get_finished_spans()
    assert handled == [{"entry": 2}]
    assert process.parent is None and process.context.trace_id == 1
    assert process.attributes["coaching.trace_context"] == "missing"


@pytest.mark.parametrize("header", [
    "00-not-a-trace-01",
    "00-00000000000000000000000000000000-0000000000000001-01",  # all-zero trace id
    "00-" + "a" * 32 + "-" + "b" * 16 + "-01" + "x" * 600,        # oversized
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n{\"forged\": 1}",
])
def test_a_malformed_or_hostile_traceparent_starts_a_new_trace_marked_invalid(traced, header):
    tracer, broker, exporter = traced

    async def handler(message):
        pass

    broker.subscribe("coaching.entries", "goal-tracker", handler)

    async def scenario():
        await broker.send("coaching.entries", {}, {"traceparent": header}, traced=False)
        await broker.drain()

    run(scenario())
    [process] = exporter.get_finished_spans()
    assert process.parent is None
    assert process.attributes["coaching.trace_context"] == "invalid"


def test_a_failing_handler_marks_its_span_as_error_and_the_others_still_run(traced):
    tracer, broker, exporter = traced
    ran = []

    async def broken(message):
        raise TimeoutError("model endpoint did not answer")

    async def fine(message):
        ran.append("fine")

    broker.subscribe("coaching.entries", "coach", broken)
    broker.subscribe("coaching.entries", "reflection", fine)

    async def scenario():
        await broker.send("coaching.entries", {})
        return await broker.drain()

    errors = run(scenario())
    assert [type(e) for e in errors] == [TimeoutError] and ran == ["fine"]
    processes = [s for s in exporter.get_finished_spans() if s.name.startswith("process")]
    status = {s.attributes["coaching.consumer"]: s.status.status_code for s in processes}
    assert status == {"coach": StatusCode.ERROR, "reflection": StatusCode.UNSET}
    [failed] = [s for s in processes if s.status.status_code is StatusCode.ERROR]
    assert failed.events[0].name == "exception"


def test_a_consumer_process_exporting_only_its_own_spans_still_draws_them(traced):
    tracer, broker, exporter = traced

    async def handler(message):
        pass

    broker.subscribe("coaching.entries", "goal-tracker", handler)

    async def scenario():
        await broker.send("coaching.entries", {})
        await broker.drain()

    run(scenario())
    consumer_side = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert list(tree(consumer_side)) == [
        "trace 00000000000000000000000000000001",
        "  process coaching.entries [CONSUMER] span #2 (consumer=goal-tracker)",
    ]


def test_the_demo_draws_one_trace_across_both_hops_and_two_new_traces(capsys):
    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("headers on the wire: {'traceparent': "
                        "'00-00000000000000000000000000000001-0000000000000002-01'}")
    assert lines[1] == "handler errors: ['TimeoutError']"
    traces = [line for line in lines if line.startswith("trace ")]
    assert len(traces) == 3
    first = lines[lines.index(traces[0]):lines.index(traces[1])]
    assert [line.strip().split(" [")[0] for line in first[1:]] == [
        "POST /entries", "send coaching.entries", "process coaching.entries",
        "send coaching.goals", "process coaching.goals", "call model"]
    assert "trace_context=missing" in lines[lines.index(traces[1]) + 1]
    assert "trace_context=invalid" in lines[lines.index(traces[2]) + 1]
