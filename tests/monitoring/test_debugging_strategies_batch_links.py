"""Tests of span links for batch consumption."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from snippets.monitoring.debugging_strategies_batch_links import (
    SequentialIds,
    batches_of,
    main,
    process_batch,
    send,
)


def setup():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_the_batch_span_links_to_every_traced_message_and_has_no_parent():
    tracer, exporter = setup()
    batch = [send(tracer, "coaching.entries", {"message_id": f"m-{n}"}) for n in range(3)]
    process_batch(tracer, "coaching.entries", batch)
    *sends, batch_span = exporter.get_finished_spans()
    assert batch_span.parent is None and batch_span.kind is SpanKind.CONSUMER
    assert [link.context.span_id for link in batch_span.links] == [s.context.span_id for s in sends]
    assert [link.context.trace_id for link in batch_span.links] == [1, 2, 3]
    assert batch_span.context.trace_id == 4
    assert [link.attributes["messaging.message.id"] for link in batch_span.links] == [
        "m-0", "m-1", "m-2"]
    assert batch_span.attributes["messaging.batch.message_count"] == 3


def test_a_batch_processed_inside_another_span_still_starts_its_own_trace():
    tracer, exporter = setup()
    batch = [send(tracer, "coaching.entries", {})]
    with tracer.start_as_current_span("evening job"):
        process_batch(tracer, "coaching.entries", batch)
    batch_span = next(s for s in exporter.get_finished_spans() if s.name.startswith("process"))
    assert batch_span.parent is None


def test_messages_without_usable_context_are_processed_and_counted_not_linked():
    tracer, exporter = setup()
    batch = [send(tracer, "coaching.entries", {}), {}, {"traceparent": "garbage"}]
    context = process_batch(tracer, "coaching.entries", batch)
    batch_span = exporter.get_finished_spans()[-1]
    assert context.is_valid
    assert len(batch_span.links) == 1
    assert batch_span.attributes["coaching.batch.untraced"] == 2
    assert batch_span.attributes["messaging.batch.message_count"] == 3


def test_a_request_trace_leads_to_the_batch_that_handled_its_message():
    tracer, exporter = setup()
    morning = [send(tracer, "coaching.entries", {}) for _ in range(2)]  # traces 1, 2
    evening = [send(tracer, "coaching.entries", {}) for _ in range(2)]  # traces 3, 4
    process_batch(tracer, "coaching.entries", morning)                 # trace 5
    process_batch(tracer, "coaching.entries", evening)                 # trace 6
    spans = exporter.get_finished_spans()
    assert [s.context.trace_id for s in batches_of(2, spans)] == [5]
    assert [s.context.trace_id for s in batches_of(3, spans)] == [6]
    assert batches_of(99, spans) == []


def test_an_empty_batch_makes_a_span_with_no_links():
    tracer, exporter = setup()
    process_batch(tracer, "coaching.entries", [])
    [span] = exporter.get_finished_spans()
    assert span.links == () or list(span.links) == []
    assert span.attributes["messaging.batch.message_count"] == 0
    assert trace.INVALID_SPAN.get_span_context().is_valid is False


def test_the_demo_shows_three_links_and_one_untraced_message(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("process coaching.entries [CONSUMER] "
                        "trace=00000000000000000000000000000004 parent=None")
    assert lines[1] == ("  attributes: {'messaging.batch.message_count': 4, "
                        "'coaching.batch.untraced': 1}")
    assert sum(line.startswith("  link -> ") for line in lines) == 3
    assert lines[-1] == "request trace 2 was handled by: process coaching.entries in trace 4"
