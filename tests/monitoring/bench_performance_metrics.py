"""What observability costs per event: metrics, a JSON log line, a trace span, all three.

Each variant handles the same 20,000 events with the same trivial async
handler, in one run, so the differences are the instrumentation alone: the
modules of this chapter, with the log line written to a stream that discards
it and spans exported to an exporter that discards them (the cost of
shipping them elsewhere is the exporter's, and is paid off the hot path by a
batch processor).
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry

from snippets.monitoring.event_tracking_correlation import JsonFormatter
from snippets.monitoring.performance_metrics_prometheus import (
    ConsumerMetrics,
    Event,
    InstrumentedConsumer,
)
from tests.bench import support

EVENTS = 20_000
PROPAGATOR = TraceContextTextMapPropagator()


class Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class DiscardSpans(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def make_variant(name: str):
    """Return an async per-event function for one instrumentation variant."""
    async def handler(event: Event) -> None:
        pass

    metrics = ConsumerMetrics(CollectorRegistry())
    consumer = InstrumentedConsumer("bench", handler, metrics, remember=EVENTS * 2)
    log = logging.getLogger(f"bench.monitoring.{name}")
    stream_handler = logging.StreamHandler(Discard())
    stream_handler.setFormatter(JsonFormatter())
    log.handlers[:], log.propagate = [stream_handler], False
    log.setLevel(logging.INFO)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DiscardSpans()))
    tracer = provider.get_tracer("bench")
    headers: dict[str, str] = {}
    with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
        PROPAGATOR.inject(headers)

    async def bare(event: Event) -> None:
        await handler(event)

    async def logged(event: Event) -> None:
        await handler(event)
        log.info("handled", extra={"event": "handled", "message_id": event.id})

    async def traced(event: Event) -> None:
        with tracer.start_as_current_span("process coaching.entries", context=PROPAGATOR.extract(headers),
                                          kind=SpanKind.CONSUMER):
            await handler(event)

    async def everything(event: Event) -> None:
        with tracer.start_as_current_span("process coaching.entries", context=PROPAGATOR.extract(headers),
                                          kind=SpanKind.CONSUMER):
            await consumer(event)
            log.info("handled", extra={"event": "handled", "message_id": event.id})

    return {"bare handler": bare, "+ Prometheus metrics": consumer, "+ one JSON log line": logged,
            "+ one trace span (extract + process)": traced, "all three": everything}[name]


VARIANTS = ["bare handler", "+ Prometheus metrics", "+ one JSON log line",
            "+ one trace span (extract + process)", "all three"]


def measure(name: str) -> float:
    events = [Event(f"e-{i}", "EntryWritten", 0.0, {}) for i in range(EVENTS)]

    def once() -> None:
        step = make_variant(name)

        async def go() -> None:
            for event in events:
                await step(event)

        asyncio.run(go())

    return support.median_seconds(once, repeats=5)


def main() -> None:
    seconds = {name: measure(name) for name in VARIANTS}
    bare = seconds["bare handler"]
    rows = []
    for name in VARIANTS:
        per_event = seconds[name] / EVENTS * 1e6
        rows.append([name, f"{per_event:.1f}", f"{EVENTS / seconds[name]:,.0f}",
                     "-" if name == "bare handler" else f"{per_event - bare / EVENTS * 1e6:.1f}"])
        print(rows[-1], flush=True)
    path = support.write(
        "monitoring/performance_metrics",
        columns=["Variant", "µs per event", "Events/s", "Added µs per event"],
        rows=rows, command="make bench BENCH=monitoring",
        note=f"{EVENTS:,} events per run, median of 5 runs after 1 warm-up; one process, "
             "log lines and spans discarded after formatting and export.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
