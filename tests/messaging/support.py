"""Helpers for this chapter's restart tests, shared by the engine-backed queue tests."""

from __future__ import annotations

import asyncio


async def drain(consumer, expected: set[str], patience: float = 30.0) -> list:
    """Receive and acknowledge until every expected body has arrived and the queue has been
    quiet for 2 s, or ``patience`` seconds have passed: on a loaded machine a restarted
    server can pause for longer than one receive's timeout."""
    loop = asyncio.get_running_loop()
    deadline, drained = loop.time() + patience, []
    while True:
        batch = await consumer.receive(max_messages=100, timeout=2)
        await consumer.ack(batch)
        drained += batch
        if not batch and (expected <= {m.body.decode() for m in drained}
                          or loop.time() > deadline):
            return drained
