"""Structured JSON logs that carry correlation and causation ids across every hop.

Every message has three ids in its headers: its own ``message_id``, the
``correlation_id`` of the request that started the whole flow, and the
``causation_id`` of the message whose handler published it. A handler never
passes them by hand: the bus keeps the message being handled in a
``contextvars.ContextVar``, stamps every message published from inside a
handler, and a ``logging.Formatter`` writes the ids into every log line as
JSON. A message that arrives without ids (or with malformed ones) still flows:
it gets fresh ids, and the log says which were generated.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ID_HEADERS = ("message_id", "correlation_id", "causation_id")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_current: ContextVar[Message | None] = ContextVar("current_message", default=None)
_handler: ContextVar[str | None] = ContextVar("current_handler", default=None)


@dataclass(frozen=True, slots=True)
class Message:
    """An event with its headers (the ids live in the headers, not the payload)."""

    type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: level, logger, text, the current message's ids, extras.

    Args:
        timestamps: add an ISO-8601 UTC ``ts`` field (turn off for stable output).
    """

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {}
        message = _current.get()
        if message is not None:  # the message being handled, unless extras say otherwise
            fields |= {"type": message.type} | {k: message.headers.get(k) for k in ID_HEADERS}
            fields["handler"] = _handler.get()
        fields |= {k: v for k, v in vars(record).items() if k not in _RESERVED}
        doc: dict[str, Any] = {}
        if self.timestamps:
            doc["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc |= {"level": record.levelname, "logger": record.name}
        for key in ("event", "type", *ID_HEADERS, "handler"):  # a stable order to read
            if fields.get(key) is not None:
                doc[key] = fields.pop(key)
        doc["msg"] = record.getMessage()
        doc |= {k: v for k, v in fields.items() if v is not None}
        if record.exc_info and record.exc_info[1] is not None:
            doc["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(doc, default=str, ensure_ascii=False)


Handler = Callable[[Message], Awaitable[None]]


class CorrelatedBus:
    """An in-memory bus that stamps, checks and logs correlation and causation ids.

    Args:
        new_id: makes a fresh id (default: a random UUID in hex).
        logger: where the JSON lines go.
    """

    def __init__(self, *, new_id: Callable[[], str] | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.log = logger or logging.getLogger("coaching.bus")
        self._handlers: dict[str, list[tuple[str, Handler]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, type_: str, name: str, handler: Handler) -> None:
        """Run ``handler`` (known as ``name`` in the logs) for every message of ``type_``."""
        self._handlers.setdefault(type_, []).append((name, handler))

    # --8<-- [start:stamp]
    async def publish(self, type_: str, payload: Mapping[str, Any], *,
                      correlation_id: str | None = None) -> Message:
        """Publish a new message; inside a handler it inherits the handled message's ids.

        Outside a handler it starts a flow: ``correlation_id`` (say, an HTTP
        request id) is used if valid, otherwise a new one is made.
        """
        cause = _current.get()
        if cause is not None:
            correlation, causation = cause.headers["correlation_id"], cause.headers["message_id"]
        else:
            correlation, causation = correlation_id or "", ""
        headers = {"message_id": self.new_id(), "correlation_id": correlation}
        if causation:
            headers["causation_id"] = causation
        return await self.deliver(Message(type_, dict(payload), headers), _source="published")

    async def deliver(self, message: Message, *, _source: str = "received") -> Message:
        """Accept a message from outside (a broker, another service): repair missing ids."""
        headers = {k: str(v) for k, v in message.headers.items()}
        generated, rejected = [], {}
        for key in ("message_id", "correlation_id"):
            value = headers.get(key, "")
            if not VALID_ID.fullmatch(value):
                if value:  # hostile or malformed: keep a short, escaped trace of it
                    rejected[key] = repr(value[:40])
                headers[key] = self.new_id()
                generated.append(key)
        if "causation_id" in headers and not VALID_ID.fullmatch(headers["causation_id"]):
            rejected["causation_id"] = repr(headers.pop("causation_id")[:40])
        ids = {k: headers[k] for k in ID_HEADERS if k in headers}
        if generated and _source == "received" or rejected:
            headers["ids_generated"] = ",".join(generated)
            self.log.warning("message arrived without valid ids: generated %s",
                             ", ".join(generated) or "none", extra={
                                 "event": "ids_generated", "type": message.type, **ids,
                                 "generated": generated, "rejected": rejected})
        message = Message(message.type, message.payload, headers)
        self.log.info("%s %s", _source, message.type,
                      extra={"event": _source, "type": message.type, **ids})
        for name, handler in self._handlers.get(message.type, []):
            task = asyncio.create_task(self._handle(name, handler, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return message
    # --8<-- [end:stamp]

    async def _handle(self, name: str, handler: Handler, message: Message) -> None:
        token = _current.set(message)  # this task's context only: no cross-talk
        name_token = _handler.set(name)
        try:
            await handler(message)
        except Exception:
            self.log.exception("%s failed", name, extra={"event": "failed", "handler": name})
        else:
            self.log.info("%s handled it", name, extra={"event": "handled", "handler": name})
        finally:
            _current.reset(token)
            _handler.reset(name_token)

    async def drain(self) -> None:
        """Wait until every handler, including those started by handlers, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


def counter_ids(prefix: str = "m") -> Callable[[], str]:
    """Deterministic ids (``m-01``, ``m-02``, ...) for demos and tests."""
    numbers = itertools.count(1)
    return lambda: f"{prefix}-{next(numbers):02d}"


# --8<-- [start:demo]
async def main() -> None:
    """A journal entry fans out over three hops; a legacy message arrives with no ids."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(timestamps=False))  # stable output for this page
    log = logging.getLogger("coaching.bus")
    log.handlers[:], log.propagate = [handler], False
    log.setLevel(logging.INFO)
    bus = CorrelatedBus(new_id=counter_ids(), logger=log)

    async def goal_tracker(message: Message) -> None:
        await bus.publish("GoalProgressed", {"goal": message.payload["goal"], "sessions": 3})

    async def coach(message: Message) -> None:
        await bus.publish("NudgeSent", {"text": "Three evenings in a row: keep going"})

    async def mood_agent(message: Message) -> None:
        raise TimeoutError("model endpoint did not answer")

    bus.subscribe("EntryWritten", "goal-tracker", goal_tracker)
    bus.subscribe("EntryWritten", "mood-agent", mood_agent)
    bus.subscribe("GoalProgressed", "coach", coach)
    await bus.publish("EntryWritten", {"goal": "write daily"}, correlation_id="req-7f3a")
    await bus.drain()
    await bus.deliver(Message("EntryWritten", {"goal": "run 5 km"}, {"source": "importer"}))
    await bus.drain()


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:demo]
