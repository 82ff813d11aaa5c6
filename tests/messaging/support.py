"""Helpers shared by this chapter's engine-backed queue tests: draining after a restart, a fake server."""

from __future__ import annotations

import asyncio

import pytest


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


class FakeServer:
    """A TCP server on a free port that counts connections and either closes each one at
    once (a server going away, or not the engine expected) or never answers (a hung
    server). Entered, it gives ``url`` with ``{port}`` filled in."""

    def __init__(self, answer: bool, url: str) -> None:
        self.answer, self.url, self.connections, self._open = answer, url, 0, []

    async def __aenter__(self) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            if self.answer:
                writer.close()
            else:
                self._open.append(writer)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self.url.format(port=self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._open:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


async def silent_connect(connect, url: str, match: str) -> tuple[int, float]:
    """One ``connect(url, attempts=1)`` to a server that accepts and never answers
    (``url`` with ``{port}``): it must raise a ``ConnectionError`` matching ``match``.
    Returns the connections the server saw and the seconds the connect took."""
    silent = FakeServer(answer=False, url=url)
    async with silent as address:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectionError, match=match):
            await connect(address, attempts=1)
        waited = loop.time() - start
    return silent.connections, waited
