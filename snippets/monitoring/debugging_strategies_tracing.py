"""One trace from the HTTP request, through the broker, to the last consumer.

The producer injects the W3C ``traceparent`` header of its ``send`` span into
the message headers; the consumer extracts it and starts its ``process`` span
as a child, so a tracing backend draws one tree across every hop. Spans
follow OpenTelemetry's messaging conventions: ``send <destination>`` with
kind PRODUCER, ``process <destination>`` with kind CONSUMER.

A message that arrives with no ``traceparent``, or a malformed one, is still
processed: its span starts a new trace and says why, in the attribute
``coaching.trace_context`` (``missing`` or ``invalid``), so the gap is
searchable instead of silent. The demo fixes trace and span ids with a
sequential id generator so that its output is the same on every run; in
production keep the SDK's random ids.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()


class SequentialIds(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: reproducible output for demos and tests."""

    def __init__(self) -> None:
        self._traces, self._spans = itertools.count(1), itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._traces)

    def generate_span_id(self) -> int:
        return next(self._spans)


@dataclass
class Message:
    """A message on the in-memory broker: headers carry the trace context."""

    destination: str
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]


# --8<-- [start:propagate]
class TracedBroker:
    """An in-memory broker whose publish and delivery carry W3C trace context."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self._subscribers: dict[str, list[tuple[str, Handler]]] = {}
        self._queue: asyncio.Queue[Message] = asyncio.Queue()

    def subscribe(self, destination: str, name: str, handler: Handler) -> None:
        """Deliver every message sent to ``destination`` to ``handler``."""
        self._subscribers.setdefault(destination, []).append((name, handler))

    async def send(self, destination: str, body: dict[str, object],
                   headers: dict[str, str] | None = None, *, traced: bool = True) -> Message:
        """Send inside a PRODUCER span and write its context into the headers.

        ``traced=False`` stands for a producer that knows nothing of tracing.
        """
        message = Message(destination, body, dict(headers or {}))
        if not traced:
            await self._queue.put(message)
            return message
        with self.tracer.start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER,
                                               attributes=_attributes(message, "send")):
            PROPAGATOR.inject(message.headers)
            await self._queue.put(message)
        return message

    async def _process(self, message: Message, name: str, handler: Handler) -> None:
        parent = PROPAGATOR.extract(message.headers)
        attributes = _attributes(message, "process") | {"coaching.consumer": name}
        if not trace.get_current_span(parent).get_span_context().is_valid:
            state = "invalid" if "traceparent" in message.headers else "missing"
            attributes["coaching.trace_context"] = state  # a new trace, and we say why
        with self.tracer.start_as_current_span(f"process {message.destination}", context=parent,
                                               kind=SpanKind.CONSUMER, attributes=attributes):
            await handler(message)  # an exception is recorded on the span and re-raised
# --8<-- [end:propagate]

    async def drain(self) -> list[BaseException]:
        """Deliver until no message is left; return the handlers' exceptions."""
        errors: list[BaseException] = []
        while not self._queue.empty():
            message = self._queue.get_nowait()
            for name, handler in self._subscribers.get(message.destination, []):
                try:
                    await self._process(message, name, handler)
                except Exception as error:
                    errors.append(error)
        return errors


def _attributes(message: Message, operation: str) -> dict[str, str]:
    return {"messaging.system": "in-memory", "messaging.destination.name": message.destination,
            "messaging.operation.type": operation}


def tree(spans: list[ReadableSpan]) -> Iterator[str]:
    """Draw finished spans as one tree per trace; a span whose parent is elsewhere is a root."""
    known = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.context.span_id):
        parent = span.parent.span_id if span.parent and span.parent.span_id in known else None
        children.setdefault(parent, []).append(span)

    def draw(span: ReadableSpan, depth: int) -> Iterator[str]:
        extra = [f"{k.split('.')[-1]}={v}" for k, v in span.attributes.items()
                 if k in ("coaching.consumer", "coaching.trace_context")]
        if span.status.status_code is StatusCode.ERROR:
            extra.append(f"ERROR {(span.status.description or '').split(':')[0]}")
        yield (f"{'  ' * depth}{span.name} [{span.kind.name}] span #{span.context.span_id:x}"
               + (f" ({', '.join(extra)})" if extra else ""))
        for child in children.get(span.context.span_id, []):
            yield from draw(child, depth + 1)

    for root in children.get(None, []):
        yield f"trace {root.context.trace_id:032x}"
        yield from draw(root, 1)


# --8<-- [start:demo]
async def main() -> None:
    """A journal entry crosses two hops and fails in the coach; a legacy message has no context."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("coaching")
    broker = TracedBroker(tracer)

    async def goal_tracker(message: Message) -> None:
        await broker.send("coaching.goals", {"entry": message.body["entry"], "sessions": 3})

    async def coach(message: Message) -> None:
        with tracer.start_as_current_span("call model", kind=SpanKind.CLIENT):
            if message.body["entry"] == 1:
                raise TimeoutError("model endpoint did not answer")

    broker.subscribe("coaching.entries", "goal-tracker", goal_tracker)
    broker.subscribe("coaching.goals", "coach", coach)
    with tracer.start_as_current_span("POST /entries", kind=SpanKind.SERVER):
        sent = await broker.send("coaching.entries", {"entry": 1})
    print(f"headers on the wire: {sent.headers}")
    await broker.send("coaching.entries", {"entry": 2}, traced=False)  # a legacy producer
    await broker.send("coaching.entries", {"entry": 3}, {"traceparent": "00-not-a-trace-01"},
                      traced=False)
    errors = await broker.drain()
    print(f"handler errors: {[type(e).__name__ for e in errors]}")
    print("\n".join(tree(list(exporter.get_finished_spans()))))


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:demo]
