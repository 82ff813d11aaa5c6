"""Span links for batch consumption: one span, many causes.

The evening reflection job takes the day's journal entries in one batch.
Each entry was sent in its own request, so each carries a different trace
context: the batch span cannot have them all as parents. OpenTelemetry's
answer is *links*: the batch's ``process`` span starts its own trace and
links to the ``send`` span of every message in it. From any entry's trace a
backend can then jump to the batch that handled it, and from the batch to
every entry.

A message with no usable context is still processed; it just adds no link,
and the span counts it in ``coaching.batch.untraced``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()


class SequentialIds(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: reproducible output."""

    def __init__(self) -> None:
        self._traces, self._spans = itertools.count(1), itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._traces)

    def generate_span_id(self) -> int:
        return next(self._spans)


def send(tracer: trace.Tracer, destination: str, headers: dict[str, str]) -> dict[str, str]:
    """Send one message in its own trace; return its headers with ``traceparent``."""
    with tracer.start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER):
        PROPAGATOR.inject(headers)
    return headers


# --8<-- [start:links]
def process_batch(tracer: trace.Tracer, destination: str,
                  batch: Sequence[dict[str, str]]) -> trace.SpanContext:
    """Process a batch under one CONSUMER span linked to every message's context."""
    links, untraced = [], 0
    for headers in batch:
        context = trace.get_current_span(PROPAGATOR.extract(headers)).get_span_context()
        if context.is_valid:
            links.append(Link(context, {"messaging.message.id": headers.get("message_id", "")}))
        else:
            untraced += 1
    with tracer.start_as_current_span(
            f"process {destination}", kind=SpanKind.CONSUMER, links=links,
            context=trace.set_span_in_context(trace.INVALID_SPAN),  # a root, never a child
            attributes={"messaging.batch.message_count": len(batch),
                        "coaching.batch.untraced": untraced}) as span:
        return span.get_span_context()
# --8<-- [end:links]


def batches_of(trace_id: int, spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    """The spans that link to anything in ``trace_id``: where did this request's message go?"""
    return [s for s in spans if any(link.context.trace_id == trace_id for link in s.links)]


def main() -> None:
    """Three entries from three requests, and one from an old importer, in one evening batch."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("coaching")
    batch = [send(tracer, "coaching.entries", {"message_id": f"m-{n}"}) for n in (1, 2, 3)]
    batch.append({"message_id": "m-4"})  # the importer sends no trace context
    process_batch(tracer, "coaching.entries", batch)

    spans = list(exporter.get_finished_spans())
    batch_span = spans[-1]
    print(f"{batch_span.name} [{batch_span.kind.name}] trace={batch_span.context.trace_id:032x} "
          f"parent={batch_span.parent}")
    print(f"  attributes: {dict(batch_span.attributes)}")
    for link in batch_span.links:
        print(f"  link -> trace={link.context.trace_id:032x} span={link.context.span_id:016x} "
              f"{dict(link.attributes or {})}")
    for span in batches_of(2, spans):
        print(f"request trace 2 was handled by: {span.name} in trace {span.context.trace_id}")


if __name__ == "__main__":
    main()
