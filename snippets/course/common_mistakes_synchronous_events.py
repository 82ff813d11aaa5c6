"""Mistake: synchronous events. Publishing waits for every subscriber.

``WaitingBus.publish`` awaits each handler in turn. The journal that
publishes ``entry.created`` is then as slow as the slowest coach, and when
one handler raises, the exception reaches the journal and the handlers
after it never run: a direct call chain wearing an event's name.

``QueueingBus`` is the fix: each subscriber owns a queue and a worker task.
``publish`` puts the event in every queue and returns; a handler that
raises is recorded and its worker carries on with the next event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any], Awaitable[None]]


# --8<-- [start:broken]
class WaitingBus:
    """Broken: publish runs every handler before it returns."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        """Add a handler; it will run inside every later publish."""
        self.handlers.append(handler)

    async def publish(self, event: Any) -> None:
        """Run the handlers one after the other; the first exception escapes."""
        for handler in self.handlers:
            await handler(event)  # the publisher waits, and inherits every failure
# --8<-- [end:broken]


# --8<-- [start:fixed]
class QueueingBus:
    """Fixed: publish enqueues and returns; one worker per subscriber handles in order."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[Any]] = []
        self.workers: list[asyncio.Task[None]] = []
        self.failures: list[tuple[str, Any, Exception]] = []

    def subscribe(self, handler: Handler) -> None:
        """Give the handler its own queue and worker task (call inside a running loop)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self.queues.append(queue)
        self.workers.append(asyncio.create_task(self._work(handler, queue)))

    async def _work(self, handler: Handler, queue: asyncio.Queue[Any]) -> None:
        while True:
            event = await queue.get()
            try:
                await handler(event)
            except Exception as error:  # noqa: BLE001 - isolated: recorded, never raised
                self.failures.append((handler.__name__, event, error))
            finally:
                queue.task_done()

    async def publish(self, event: Any) -> None:
        """Put the event in every subscriber's queue and return."""
        for queue in self.queues:
            await queue.put(event)  # waits only if a queue is full (backpressure)

    async def drain(self) -> None:
        """Wait until every queued event is handled, then stop the workers."""
        for queue in self.queues:
            await queue.join()
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
# --8<-- [end:fixed]


def diary_subscribers(done: list[str]) -> list[Handler]:
    """A fast goal tracker, an e-mail reminder whose relay is down, and a slower coach."""

    async def goal_tracker(entry: str) -> None:
        done.append("goal_tracker")

    async def reminder_email(entry: str) -> None:
        raise ConnectionError("e-mail relay down")

    async def coach(entry: str) -> None:
        await asyncio.sleep(0)  # a model call: the coach yields while it waits
        done.append("coach")

    return [goal_tracker, reminder_email, coach]


async def main() -> None:
    """The same three subscribers behind each bus; the e-mail relay is down."""
    for bus in (WaitingBus(), QueueingBus()):
        done: list[str] = []
        for handler in diary_subscribers(done):
            bus.subscribe(handler)
        name = type(bus).__name__
        try:
            await bus.publish("entry 1: ran 5 km")
            print(f"{name}: publish returned; handled by then: {done or 'none'}")
        except ConnectionError as error:
            print(f"{name}: publish raised {error!r}; handled by then: {done}")
        if isinstance(bus, QueueingBus):
            await bus.drain()
            failed = [(who, str(error)) for who, _, error in bus.failures]
            print(f"{name}: after drain: {done}, failures recorded: {failed}")
        else:
            skipped = [h.__name__ for h in bus.handlers if h.__name__ not in done]
            print(f"{name}: never handled: {skipped}; the journal got the relay's error")


if __name__ == "__main__":
    asyncio.run(main())
