"""An asynchronous in-memory event bus for a diary coaching system.

Channels are dotted lowercase names such as ``coaching.goals`` or
``system.agent.register``. A subscription names a channel or a pattern:
``*`` stands for exactly one segment and ``#`` for zero or more.

Every subscription owns a mailbox of at most ``mailbox_size`` events and a
worker task, so handlers of different subscribers run concurrently. An event
gets its sequence number and enters every matching mailbox in one step, with
no ``await`` in between, so every subscriber sees events in sequence order,
however many publishers there are. When a mailbox is full, the publisher
waits in line for that subscriber (backpressure); the other subscribers
already have the event. A handler that raises is reported and the bus
carries on; closing the bus, or a subscription, first handles every event
already delivered or waiting in line.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

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
    error: Exception | asyncio.CancelledError


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

    The mailbox holds at most ``bus.mailbox_size`` events; a delivery that
    finds it full waits in line, and the line enters the mailbox in order as
    the worker frees room. Use it as an async context manager to unsubscribe
    (and drain) on exit.
    """

    def __init__(self, bus: EventBus, pattern: str, handler: Handler, name: str) -> None:
        self.pattern, self.name, self.active = pattern, name, True
        self._segments = parse_channel(pattern, pattern=True)
        self._bus, self._handler = bus, handler
        self._capacity = bus.mailbox_size
        self._mailbox: deque[Event] = deque()
        self._line: deque[tuple[Event, asyncio.Future[None]]] = deque()  # full: waiting
        self._wakeup: asyncio.Future[None] | None = None
        self._drained = asyncio.Event()  # set by the worker whenever it runs dry
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=name)

    def matches(self, channel: str | tuple[str, ...]) -> bool:
        """Tell whether a channel (a name, or segments from :func:`parse_channel`) is routed here."""
        if isinstance(channel, str):
            channel = parse_channel(channel)
        return matches(self._segments, channel)

    async def join(self) -> None:
        """Wait until every event delivered here so far, in line included, is handled."""
        await self._drained.wait()

    def unsubscribe(self) -> None:
        """Stop routing new events here; events delivered or in line still run."""
        if not self.active:
            return
        self.active = False
        self._bus._remove(self)
        self._wake()

    async def aclose(self) -> None:
        """Unsubscribe and wait until every event delivered here is handled."""
        self.unsubscribe()
        await asyncio.wait([self._worker])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
    # --8<-- [end:subscription]

    # --8<-- [start:deliver]
    def deliver(self, event: Event) -> asyncio.Future[None] | None:
        """Put ``event`` in the mailbox, or in line for it if the mailbox is full.

        Events enter the mailbox in the order ``deliver`` was called.

        Returns:
            ``None`` once the event is in the mailbox; otherwise a future that
            completes when it gets there. Cancelling that future withdraws the
            event from the line.

        Raises:
            RuntimeError: the subscription has been unsubscribed.
        """
        if not self.active:
            raise RuntimeError(f"subscription {self.name!r} is closed: "
                               f"cannot deliver {event.channel!r} #{event.seq}")
        self._drained.clear()
        if len(self._mailbox) < self._capacity:
            self._mailbox.append(event)
            self._wake()
            return None
        admitted = asyncio.get_running_loop().create_future()
        admitted.add_done_callback(self._withdraw)
        self._line.append((event, admitted))
        return admitted

    async def _run(self) -> None:
        while True:
            if not self._mailbox:  # the line is empty too: it only waits while full
                self._drained.set()
                if not self.active:
                    return
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                continue
            event = self._mailbox.popleft()
            self._admit()
            try:
                result = self._handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # noqa: BLE001 (isolate the failure, report it)
                self._bus._report(HandlerFailure(self.name, event, error))
            except asyncio.CancelledError as error:  # from a task the handler awaited
                if self._worker.cancelling():  # the worker itself is cancelled: stop
                    raise
                self._bus._report(HandlerFailure(self.name, event, error))

    def _admit(self) -> None:
        """Move the first live delivery in line into the room just freed."""
        while self._line:
            event, admitted = self._line.popleft()
            if not admitted.cancelled():
                self._mailbox.append(event)
                admitted.set_result(None)
                return

    def _withdraw(self, admitted: asyncio.Future[None]) -> None:
        if admitted.cancelled():  # its publisher gave up: drop it from the line
            self._line = deque(entry for entry in self._line if entry[1] is not admitted)

    def _wake(self) -> None:
        if self._wakeup is not None:
            if not self._wakeup.done():  # done: the worker was cancelled while parked
                self._wakeup.set_result(None)
            self._wakeup = None
    # --8<-- [end:deliver]


class EventBus:
    """Routes published events to every subscription whose pattern matches.

    Args:
        mailbox_size: events a subscriber may have waiting before ``publish``
            waits for it (backpressure instead of unbounded memory); at least 1.
        on_error: called with each :class:`HandlerFailure`, besides logging it.
        route_cache_size: channels whose matching subscriptions are remembered
            (least recently used first out); 0 turns the cache off.

    Raises:
        TypeError: a size is not an int.
        ValueError: ``mailbox_size`` is below 1 or ``route_cache_size`` below 0.
    """

    def __init__(
        self,
        *,
        mailbox_size: int = 1024,
        on_error: Callable[[HandlerFailure], None] | None = None,
        route_cache_size: int = 1024,
    ) -> None:
        for label, value, least in (("mailbox_size", mailbox_size, 1),
                                    ("route_cache_size", route_cache_size, 0)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{label} must be an int, not {type(value).__name__}")
            if value < least:
                raise ValueError(f"{label} must be at least {least}, not {value}")
        self.mailbox_size, self.route_cache_size = mailbox_size, route_cache_size
        self.failures: list[HandlerFailure] = []
        self._on_error = on_error
        self._subscriptions: list[Subscription] = []
        self._unsubscribed: set[Subscription] = set()  # may still be draining
        self._routes: OrderedDict[str, tuple[Subscription, ...]] = OrderedDict()
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

        Returns once the event is in every mailbox, not when handlers finish.
        If a mailbox is full, waits until that subscriber has room; cancelling
        the wait withdraws the event from the subscribers still waited for.
        """
        if self._closed:
            raise BusClosedError(f"bus is closed: refusing to publish on {channel!r}")
        targets = self._route(channel)
        event = Event(channel, data, next(self._seq))
        # Numbered and put in (or in line for) every mailbox with no await in
        # between: each subscriber sees events in seq order, whoever publishes.
        waits = [admitted for s in targets if (admitted := s.deliver(event)) is not None]
        if waits:  # backpressure: wait until every full mailbox has taken it
            await asyncio.gather(*waits)
        return event

    def _route(self, channel: str) -> tuple[Subscription, ...]:
        targets = self._routes.get(channel)
        if targets is None:
            segments = parse_channel(channel)
            targets = tuple(s for s in self._subscriptions if s.matches(segments))
            self._routes[channel] = targets
            if len(self._routes) > self.route_cache_size:
                self._routes.popitem(last=False)  # evict the least recently used
        else:
            self._routes.move_to_end(channel)
        return targets
    # --8<-- [end:publish]

    async def join(self) -> None:
        """Wait until every event published so far has been handled."""
        retired = list(self._unsubscribed)
        await asyncio.gather(*(s.join() for s in [*self._subscriptions, *retired]))
        self._unsubscribed.difference_update(retired)  # drained for good: forget them

    async def close(self) -> None:
        """Refuse new publishes, then drain every mailbox and stop the workers."""
        self._closed = True
        subscriptions = [*self._subscriptions, *self._unsubscribed]
        await asyncio.gather(*(s.aclose() for s in subscriptions))
        self._unsubscribed.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _remove(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        self._unsubscribed.add(subscription)
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
