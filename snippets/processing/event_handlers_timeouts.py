"""Handler timeouts and cancellation: a deadline per message and a graceful stop.

Every handler call runs under ``asyncio.timeout``: a coaching model that
hangs costs one deadline, not the consumer. A timed-out message is not
acknowledged, so the broker delivers it again; since the slow call may still
have succeeded on the other side, the downstream must be idempotent too.

A handler that raises costs its message, not the consumer: the message is
nacked with the error and the next one is taken. Every message taken ends
either acknowledged or nacked with a reason.

``stop(grace)`` stops taking messages, lets the message in flight finish
within ``grace`` seconds, and otherwise cancels it. A cancelled message is
not acknowledged either. ``stop`` also reports a consumer that had died
(of a ``BaseException`` that is not an ``Exception``) instead of returning
as if all were well. Deadline and shutdown are built on task cancellation,
so a handler that swallows ``CancelledError`` breaks them: the consumer
reports such a handler instead of waiting for it forever.
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


class ConsumerCrashedError(RuntimeError):
    """The consumer died before ``stop()``; the error that killed it is the cause."""


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
        """Start consuming ``queue`` in a background task.

        Raises:
            RuntimeError: the consumer was already started.
        """
        if self._task is not None:
            raise RuntimeError("already started")
        self._task = asyncio.create_task(self._run(queue))

    async def _run(self, queue: asyncio.Queue[Message]) -> None:
        while not self._stopping:
            message = await queue.get()  # stop() cancels us here when idle
            self._in_flight = message
            deadline = asyncio.timeout(self.timeout)
            try:
                async with deadline:
                    await self._handler(message)
            except Exception as error:  # noqa: BLE001 - costs this message, not the consumer
                self.nacked[message.message_id] = (
                    f"timed out after {self.timeout} s" if deadline.expired()
                    else f"failed: {type(error).__name__}: {error}")
            except asyncio.CancelledError:
                self.nacked[message.message_id] = "cancelled by shutdown"
                raise
            except BaseException as error:  # not ours to swallow: stop() reports it
                self.nacked[message.message_id] = f"consumer crashed: {type(error).__name__}: {error}"
                raise
            else:
                self.acked.append(message.message_id)
            finally:
                self._in_flight = None

    async def stop(self, grace: float) -> None:
        """Take no new message; give the one in flight ``grace`` seconds, then cancel it.

        Raises:
            ValueError: ``grace`` is negative (the consumer goes on).
            StuckHandlerError: the handler swallowed the cancellation.
            ConsumerCrashedError: the consumer had died of the error set as the cause.
        """
        if grace < 0:
            raise ValueError(f"grace must be 0 or more, not {grace}")
        self._stopping = True
        task = self._task
        if task is None:
            return
        if self._in_flight is not None:
            await asyncio.wait({task}, timeout=grace)  # finish the current message
        if not task.done():
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                raise StuckHandlerError(f"handler still running {grace} s after cancel: "
                                        "does it swallow CancelledError?")
        crash = None if task.cancelled() else task.exception()
        if crash is not None:
            raise ConsumerCrashedError(f"consumer crashed: {type(crash).__name__}: {crash}") from crash
# --8<-- [end:consumer]


async def main() -> None:
    """A hung model call, a bug, a message that finishes during shutdown, and one that does not."""
    in_flight = {"e-4": asyncio.Event(), "e-6": asyncio.Event()}
    e4_may_finish = asyncio.Event()

    async def coach(message: Message) -> None:
        if message.message_id in in_flight:
            in_flight[message.message_id].set()
        if message.message_id in ("e-2", "e-6"):
            await asyncio.Event().wait()  # the model never answers
        if message.message_id == "e-3":
            raise ValueError("no mood 'meh' on the scale")  # a bug in the handler
        if message.message_id == "e-4":
            await e4_may_finish.wait()  # answers once shutdown has begun

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

    timeout, grace = 0.2, 1.0
    print(f"-- deadline {timeout} s; stop with {grace} s of grace while e-4 is in flight")
    queue = queue_of("e-1", "e-2", "e-3", "e-4", "e-5")
    consumer = TimedConsumer(coach, timeout=timeout)
    consumer.start(queue)
    await in_flight["e-4"].wait()
    stopping = asyncio.create_task(consumer.stop(grace=grace))
    await asyncio.sleep(0)  # stop() now waits for e-4
    e4_may_finish.set()
    await stopping
    report(consumer, queue)

    timeout, grace = 10.0, 0.1
    print(f"-- deadline {timeout} s; stop with {grace} s of grace while e-6 is in flight")
    queue = queue_of("e-6")
    consumer = TimedConsumer(coach, timeout=timeout)
    consumer.start(queue)
    await in_flight["e-6"].wait()
    await consumer.stop(grace=grace)
    report(consumer, queue)


if __name__ == "__main__":
    asyncio.run(main())
