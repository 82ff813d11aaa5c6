"""Writers for the concurrency tests: run in threads, in spawned processes, or as a script.

``python -m tests.event_sourcing.workers BACKEND LOCATION STREAM BATCH`` appends
batches of BATCH events to STREAM until it is killed (the crash test's victim).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from snippets.event_sourcing import event_store_postgres, event_store_sqlite


@dataclass(frozen=True)
class Backend:
    """A store's kind and where its data lives (a file path or a libpq URL)."""

    name: str
    location: str

    @property
    def module(self) -> ModuleType:
        return event_store_sqlite if self.name == "sqlite" else event_store_postgres

    def open(self, **options: Any):
        if self.name == "sqlite":
            return event_store_sqlite.SQLiteEventStore(self.location, **options)
        return event_store_postgres.PostgresEventStore(self.location, **options)


def race_rounds(backend: Backend, barrier: Any, results: Any, worker: int, rounds: int) -> None:
    """Every round, every worker tries to write the same next version at once."""
    with backend.open() as store:
        for round_ in range(rounds):
            barrier.wait(60)
            event = backend.module.NewEvent("SessionLogged", {"worker": worker, "round": round_})
            try:
                store.append("goal-race", [event], expected_version=round_)
                results.put((round_, worker, "won", round_ + 1))
            except backend.module.VersionConflictError as error:
                results.put((round_, worker, "lost", error.actual))


def append_with_retries(backend: Backend, barrier: Any, results: Any, worker: int,
                        count: int) -> None:
    """Append ``count`` events one by one, retrying each conflict at the version it names."""
    conflicts, version = 0, 0
    with backend.open() as store:
        barrier.wait(60)
        for i in range(count):
            event = backend.module.NewEvent("SessionLogged", {"worker": worker, "i": i})
            while True:
                try:
                    version = store.append("goal-shared", [event],
                                           expected_version=version)[-1].version
                    break
                except backend.module.VersionConflictError as error:
                    conflicts += 1
                    version = error.actual
    results.put((worker, conflicts))


def append_forever(backend: Backend, stream: str, batch: int) -> None:
    """Append numbered batches until killed; say where the writer is first."""
    with backend.open() as store:
        version = len(store.read_stream(stream))
        pid = store._conn.info.backend_pid if backend.name == "postgres" else 0
        print(f"ready {pid}", flush=True)
        while True:
            number = version // batch
            events = [backend.module.NewEvent("Tick", {"batch": number, "i": i, "pad": "x" * 200})
                      for i in range(batch)]
            version = store.append(stream, events, expected_version=version)[-1].version


if __name__ == "__main__":
    name, location, stream, size = sys.argv[1:5]
    append_forever(Backend(name, location), stream, int(size))
