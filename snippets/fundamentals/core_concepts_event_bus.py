"""An asynchronous in-memory event bus for a diary coaching system.

Channels are dotted lowercase names such as ``coaching.goals`` or
``system.agent.register``. A subscription names a channel or a pattern:
``*`` stands for exactly one segment and ``#`` for zero or more.

Every subscription owns a mailbox (a bounded queue) and a worker task, so
handlers of different subscribers run concurrently while each subscriber
still sees events in publish order. A handler that raises is reported and
the bus carries on; closing the bus drains every mailbox first.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("event_bus")
_SEGMENT = re.compile(r"[a-z0-9_]+")


class BusClosedError(RuntimeError):
    """Raised by :meth:`EventBus.publish` once the bus is closing or closed."""


@dataclass(frozen=True, slots=True)
class Event:
    """One published fact: the channel, its data and its place in publish order."""

    channel: str
    data: Any
    seq: int


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A handler that raised: who failed, on which event, and why."""

    subscriber: str
    event: Event
    error: Exception


Handler = Callable[[Event], Awaitable[None] | None]


def parse_channel(name: str, *, pattern: bool = False) -> tuple[str, ...]:
    """Split a channel name (or, with ``pattern=True``, a pattern) into segments.

    Raises:
        TypeError: the name is not a string.
        ValueError: a segment is empty or holds characters other than ``a-z0-9_``.
    """
    if not isinstance(name, str):
        raise TypeError(f"channel must be a str, not {type(name).__name__}")
    segments = tuple(name.split("."))
    for segment in segments:
        if pattern and segment in ("*", "#"):
            continue
        if not _SEGMENT.fullmatch(segment):
            allowed = "a-z, 0-9 and _" + (" or a lone * or #" if pattern else "")
            raise ValueError(f"invalid channel {name!r}: segment {segment!r} must use {allowed}")
    return segments


def matches(pattern: tuple[str, ...], channel: tuple[str, ...]) -> bool:
    """Tell whether a parsed channel matches a parsed pattern."""
    if not pattern:
        return not channel
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(matches(rest, channel[i:]) for i in range(len(channel) + 1))
    return bool(channel) and head in ("*", channel[0]) and matches(rest, channel[1:])


# --8<-- [start:subscription]
class Subscription:
    """A handler attached to a channel pattern, with its own mailbox and worker.

    Use it as an async context manager to unsubscribe (and drain) on exit.
    """

    def __init__(self, bus: EventBus, pattern: str, handler: Handler, name: str) -> None:
        self.pattern, self.name, self.active = pattern, name, True
        self._segments = parse_channel(pattern, pattern=True)
        self._bus, self._handler = bus, handler
        self._mailbox: asyncio.Queue[Event] = asyncio.Queue(bus.mailbox_size)
        self._idle = True
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def _run(self) -> None:
        while True:
            self._idle = True
            event = await self._mailbox.get()
            self._idle = False
            try:
                result = self._handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # isolate the failure, report it
                self._bus._report(HandlerFailure(self.name, event, error))
            finally:
                self._mailbox.task_done()
            if not self.active and self._mailbox.empty():
                return

    def unsubscribe(self) -> None:
        """Stop routing new events here; events already delivered still run."""
        if not self.active:
            return
        self.active = False
        self._bus._remove(self)
        if self._idle and self._mailbox.empty():
            self._worker.cancel()  # parked on an empty mailbox: nothing to lose

    async def aclose(self) -> None:
        """Unsubscribe and wait until every event delivered here is handled."""
        self.unsubscribe()
        await asyncio.wait([self._worker])

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
# --8<-- [end:subscription]


class EventBus:
    """Routes published events to every subscription whose pattern matches.

    Args:
        mailbox_size: events a subscriber may have waiting before ``publish``
            waits for it (backpressure instead of unbounded memory).
        on_error: called with each :class:`HandlerFailure`, besides logging it.
    """

    def __init__(
        self,
        *,
        mailbox_size: int = 1024,
        on_error: Callable[[HandlerFailure], None] | None = None,
    ) -> None:
        self.mailbox_size = mailbox_size
        self.failures: list[HandlerFailure] = []
        self._on_error = on_error
        self._subscriptions: list[Subscription] = []
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._seq = itertools.count(1)
        self._closed = False

    def subscribe(self, pattern: str, handler: Handler, *, name: str | None = None) -> Subscription:
        """Attach ``handler`` (sync or async) to every channel matching ``pattern``."""
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if self._closed:
            raise BusClosedError(f"bus is closed: cannot subscribe to {pattern!r}")
        label = name or getattr(handler, "__name__", repr(handler))
        subscription = Subscription(self, pattern, handler, label)
        self._subscriptions.append(subscription)
        self._routes.clear()
        return subscription

    # --8<-- [start:publish]
    async def publish(self, channel: str, data: Any = None) -> Event:
        """Deliver an event to the mailbox of every matching subscription.

        Returns once the event is queued everywhere, not when handlers finish.
        """
        if self._closed:
            raise BusClosedError(f"bus is closed: refusing to publish on {channel!r}")
        targets = self._routes.get(channel)
        if targets is None:
            segments = parse_channel(channel)
            targets = tuple(s for s in self._subscriptions if matches(s._segments, segments))
            self._routes[channel] = targets
        event = Event(channel, data, next(self._seq))
        for subscription in targets:
            try:
                subscription._mailbox.put_nowait(event)
            except asyncio.QueueFull:  # backpressure: wait for this subscriber
                await subscription._mailbox.put(event)
        return event
    # --8<-- [end:publish]

    async def join(self) -> None:
        """Wait until every event published so far has been handled."""
        await asyncio.gather(*(s._mailbox.join() for s in self._subscriptions))

    async def close(self) -> None:
        """Refuse new publishes, then drain every mailbox and stop the workers."""
        self._closed = True
        subscriptions = list(self._subscriptions)
        await asyncio.gather(*(s.aclose() for s in subscriptions))

    async def __aenter__(self) -> EventBus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _remove(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        self._routes.clear()

    def _report(self, failure: HandlerFailure) -> None:
        self.failures.append(failure)
        log.error("handler %s failed on %s #%d: %r", failure.subscriber,
                  failure.event.channel, failure.event.seq, failure.error)
        if self._on_error is not None:
            try:
                self._on_error(failure)
            except Exception:  # a broken reporter must not stop the worker
                log.exception("on_error callback failed for %s", failure.subscriber)


# --8<-- [start:demo]
async def main() -> None:
    """A journal entry fans out to three coaching agents; one is slow, one fails."""
    logging.basicConfig(level=logging.CRITICAL)  # the demo prints failures itself
    slow_agent_may_finish = asyncio.Event()

    async def goal_tracker(event: Event) -> None:
        print(f"goal tracker   : entry #{event.seq} mentions {event.data['goal']!r}")

    async def mood_agent(event: Event) -> None:
        await slow_agent_may_finish.wait()  # stands in for a slow model call
        print(f"mood agent     : entry #{event.seq} sounds {event.data['mood']}")

    async def broken_agent(event: Event) -> None:
        raise RuntimeError("model endpoint returned 503")

    def on_error(failure: HandlerFailure) -> None:
        print(f"failure report : {failure.subscriber} on #{failure.event.seq}: {failure.error}")

    async with EventBus(on_error=on_error) as bus:
        bus.subscribe("coaching.entries.created", goal_tracker)
        bus.subscribe("coaching.entries.*", mood_agent)
        bus.subscribe("coaching.#", broken_agent)
        def registry(event: Event) -> None:  # plain functions work too
            print(f"registry       : {event.data} registered")

        async with bus.subscribe("system.agent.register", registry):
            await bus.publish("system.agent.register", "reflection-agent")
        entry = {"goal": "run 5 km", "mood": "hopeful"}
        published = await bus.publish("coaching.entries.created", entry)
        print(f"publisher      : entry #{published.seq} published, moving on")
        await asyncio.sleep(0)  # let the fast handlers run
        slow_agent_may_finish.set()
    try:
        await bus.publish("coaching.entries.created", entry)
    except BusClosedError as error:
        print(f"after close    : {error}")
    print(f"failures kept  : {len(bus.failures)}")


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:demo]
