"""Ephemeral and catch-up subscriptions, and the switch from catching up to live without gaps.

An **ephemeral** subscription hears events appended while it listens, and
nothing else: what was appended while it was away is gone for it. A
**catch-up** subscription starts from a position, reads the backlog from the
store, then switches to live events pushed by the store. The switch is where
events get lost or doubled, so it is done in this order: start listening
(buffering) first, read the backlog, then take live events, dropping those
already read, and fall back to reading the store if the buffer overflowed, a
position is missing, or nothing came for a while (events appended by other
processes are found that way).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple


class Recorded(NamedTuple):
    position: int
    type: str
    data: dict[str, Any]


class Live:
    """A listener's bounded buffer of live events; ``overflowed`` once it dropped one."""

    def __init__(self, size: int) -> None:
        self.events: queue.Queue[Recorded] = queue.Queue(size)
        self.overflowed = False


class Store:
    """A small SQLite event store that pushes each committed event to its listeners."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
                         "type TEXT NOT NULL, data TEXT NOT NULL)")
        self._lock = threading.Lock()
        self._listeners: list[Live] = []

    def append(self, type_: str, data: dict[str, Any]) -> Recorded:
        with self._lock:  # commit and push in one order, so listeners see positions in order
            cursor = self._db.execute("INSERT INTO events (type, data) VALUES (?, ?)",
                                      (type_, json.dumps(data)))
            event = Recorded(cursor.lastrowid, type_, data)
            for live in self._listeners:
                try:
                    live.events.put_nowait(event)
                except queue.Full:
                    live.overflowed = True  # a slow subscriber: it must catch up again
        return event

    def read_all(self, after: int, limit: int) -> list[Recorded]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE position > ? ORDER BY position "
                                    "LIMIT ?", (after, limit)).fetchall()
        return [Recorded(p, t, json.loads(d)) for p, t, d in rows]

    def listen(self, size: int) -> Live:
        live = Live(size)
        with self._lock:
            self._listeners.append(live)
        return live

    def unlisten(self, live: Live) -> None:
        with self._lock:
            self._listeners.remove(live)


# --8<-- [start:catch_up]
class CatchUpSubscription:
    """Deliver every event after ``position`` exactly once, in order: backlog, then live.

    Args:
        store: where events are read and pushed from.
        handler: called with each event; the subscription's position moves after it returns.
        position: the checkpoint to start after (0: from the beginning).
        page: events per backlog read.
        buffer: live events held while the handler is busy; more and it catches up again.
        poll_interval: seconds without a live event before it reads the store anyway.
    """

    def __init__(self, store: Store, handler: Callable[[Recorded], None], *, position: int = 0,
                 page: int = 100, buffer: int = 100, poll_interval: float = 0.5) -> None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0 \
                or page < 1 or buffer < 1 or poll_interval <= 0:
            raise ValueError(f"need position >= 0, page >= 1, buffer >= 1, poll_interval > 0; "
                             f"got {position!r}, {page}, {buffer}, {poll_interval}")
        self.store, self.handler, self.position = store, handler, position
        self.page, self.buffer, self.poll_interval = page, buffer, poll_interval
        self.catch_ups = 0  # how many times it read the store (1 + fallbacks + polls)
        self.on_caught_up: Callable[[], None] = lambda: None  # for tests and demos

    def run(self, until: Callable[[int], bool]) -> None:
        """Deliver events until ``until(position)`` is true (a service passes a stop flag)."""
        while not until(self.position):
            live = self.store.listen(self.buffer)  # 1. listen first: nothing can slip by
            try:
                self.catch_ups += 1
                while batch := self.store.read_all(self.position, self.page):  # 2. backlog
                    for event in batch:
                        self._deliver(event)
                        if until(self.position):
                            return
                self.on_caught_up()
                self._follow(live, until)  # 3. live, until it falls behind
            finally:
                self.store.unlisten(live)

    def _follow(self, live: Live, until: Callable[[int], bool]) -> None:
        while not until(self.position):
            try:
                event = live.events.get(timeout=self.poll_interval)
            except queue.Empty:
                return  # quiet, or another process appended: read the store
            if event.position <= self.position:
                continue  # already delivered from the backlog
            if event.position != self.position + 1 or live.overflowed:
                return  # a hole: read the store again from our position
            self._deliver(event)

    def _deliver(self, event: Recorded) -> None:
        self.handler(event)
        self.position = event.position
# --8<-- [end:catch_up]


# --8<-- [start:naive]
def naive_listen_after_backlog(store: Store, handler: Callable[[Recorded], None],
                               on_caught_up: Callable[[], None]) -> Live:
    """Wrong: read the backlog, then start listening. Appends in between are never seen."""
    for event in store.read_all(0, 10_000):
        handler(event)
    on_caught_up()  # another writer appends here
    return store.listen(100)  # live from now on: later events, never the one above


def naive_deliver_everything(store: Store, handler: Callable[[Recorded], None],
                             on_caught_up: Callable[[], None]) -> None:
    """Also wrong: listen first (good), but deliver every buffered event (duplicates)."""
    live = store.listen(100)
    on_caught_up()  # another writer appends here, before the backlog is read
    for event in store.read_all(0, 10_000):
        handler(event)
    while not live.events.empty():
        handler(live.events.get_nowait())
# --8<-- [end:naive]


def main() -> None:
    """An ephemeral listener, two naive switch-overs and the catch-up subscription."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "events.db")
        ephemeral = store.listen(100)  # e.g. "Ana is typing..." on an open screen
        for n in (1, 2):
            store.append("EntryWritten", {"entry": f"e{n}"})
        store.unlisten(ephemeral)  # the screen closes; e3 and e4 come while it is away
        for n in (3, 4):
            store.append("EntryWritten", {"entry": f"e{n}"})
        heard = []
        while not ephemeral.events.empty():
            heard.append(ephemeral.events.get_nowait().data["entry"])
        print(f"ephemeral                : heard {heard}, missed what came while it was away")

        def writer(entry: str) -> Callable[[], None]:
            return lambda: store.append("EntryWritten", {"entry": entry})

        seen: list[str] = []
        store.unlisten(naive_listen_after_backlog(store, lambda e: seen.append(e.data["entry"]),
                                                  writer("e5")))
        print(f"backlog, then listen     : {seen} (e5 was appended in between: lost)")
        seen = []
        naive_deliver_everything(store, lambda e: seen.append(e.data["entry"]), writer("e6"))
        print(f"listen, deliver all      : {seen} (e6 twice)")

        seen = []
        subscription = CatchUpSubscription(store, lambda e: seen.append(e.data["entry"]),
                                           position=2, page=2, buffer=2)
        burst = [7, 8, 9]  # three appends the moment it has caught up: more than its buffer

        def concurrent_writer() -> None:
            while burst:
                store.append("EntryWritten", {"entry": f"e{burst.pop(0)}"})
        subscription.on_caught_up = concurrent_writer
        subscription.run(until=lambda position: position >= 9)
        print(f"catch-up from position 2 : {seen}, read the store {subscription.catch_ups} times "
              "(its live buffer overflowed once)")


if __name__ == "__main__":
    main()
