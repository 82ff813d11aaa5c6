"""Handler timeouts and cancellation: a deadline per message and a graceful stop.

Every handler call runs under ``asyncio.timeout``: a coaching model that
hangs costs one deadline, not the consumer. A timed-out message is not
acknowledged, so the broker delivers it again; since the slow call may still
have succeeded on the other side, the downstream must be idempotent too.

``stop(grace)`` stops taking messages, lets the message in flight finish
within ``grace`` seconds, and otherwise cancels it. A cancelled message is
not acknowledged either. Both mechanisms are built on task cancellation, so
a handler that swallows ``CancelledError`` breaks them: the consumer reports
such a handler instead of waiting for it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One delivery: an id and what the handler needs."""

    message_id: str
    text: str = ""


class StuckHandlerError(RuntimeError):
    """A handler ignored cancellation: the consumer could not stop it."""


Handler = Callable[[Message], Awaitable[None]]


# --8<-- [start:consumer]
class TimedConsumer:
    """Consumes a queue with a deadline per handler call and a graceful stop.

    Args:
        handler: the business logic for one message.
        timeout: seconds a single handler call may take.
    """

    def __init__(self, handler: Handler, *, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._handler, self.timeout = handler, timeout
        self.acked: list[str] = []
        self.nacked: dict[str, str] = {}  # message id -> why it goes back to the broker
        self._in_flight: Message | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self, queue: asyncio.Queue[Message]) -> None:
        """Start consuming ``queue`` in a background task."""
        self._task = asyncio.create_task(self._run(queue))

    async def _run(self, queue: asyncio.Queue[Message]) -> None:
        while not self._stopping:
            message = await queue.get()  # stop() cancels us here when idle
            self._in_flight = message
            try:
                async with asyncio.timeout(self.timeout):
                    await self._handler(message)
            except TimeoutError:
                self.nacked[message.message_id] = f"timed out after {self.timeout} s"
            except asyncio.CancelledError:
                self.nacked[message.message_id] = "cancelled by shutdown"
                raise
            else:
                self.acked.append(message.message_id)
            finally:
                self._in_flight = None

    async def stop(self, grace: float) -> None:
        """Take no new message; give the one in flight ``grace`` seconds, then cancel it.

        Raises:
            StuckHandlerError: the handler swallowed the cancellation.
        """
        self._stopping = True
        task = self._task
        if task is None or task.done():
            return
        if self._in_flight is not None:
            await asyncio.wait({task}, timeout=grace)  # finish the current message
        if not task.done():
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                raise StuckHandlerError(f"handler still running {grace} s after cancel: "
                                        "does it swallow CancelledError?")
        try:
            await task
        except asyncio.CancelledError:
            pass
# --8<-- [end:consumer]


async def main() -> None:
    """A hung model call, a message that finishes during shutdown, and one that does not."""
    in_flight = {"e-3": asyncio.Event(), "e-5": asyncio.Event()}
    e3_may_finish = asyncio.Event()

    async def coach(message: Message) -> None:
        if message.message_id in in_flight:
            in_flight[message.message_id].set()
        if message.message_id in ("e-2", "e-5"):
            await asyncio.Event().wait()  # the model never answers
        if message.message_id == "e-3":
            await e3_may_finish.wait()  # answers once shutdown has begun

    def queue_of(*ids: str) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue()
        for message_id in ids:
            queue.put_nowait(Message(message_id))
        return queue

    def report(consumer: TimedConsumer, queue: asyncio.Queue[Message]) -> None:
        print(f"acked   : {consumer.acked}")
        for message_id, why in consumer.nacked.items():
            print(f"nacked  : {message_id} ({why}) -> the broker delivers it again")
        left = [queue.get_nowait().message_id for _ in range(queue.qsize())]
        print(f"untaken : {left}")

    print("-- deadline 0.2 s; stop with 1 s of grace while e-3 is in flight")
    queue = queue_of("e-1", "e-2", "e-3", "e-4")
    consumer = TimedConsumer(coach, timeout=0.2)
    consumer.start(queue)
    await in_flight["e-3"].wait()
    stopping = asyncio.create_task(consumer.stop(grace=1.0))
    await asyncio.sleep(0)  # stop() now waits for e-3
    e3_may_finish.set()
    await stopping
    report(consumer, queue)

    print("-- deadline 10 s; stop with 0.1 s of grace while e-5 is in flight")
    queue = queue_of("e-5")
    consumer = TimedConsumer(coach, timeout=10.0)
    consumer.start(queue)
    await in_flight["e-5"].wait()
    await consumer.stop(grace=0.1)
    report(consumer, queue)


if __name__ == "__main__":
    asyncio.run(main())
