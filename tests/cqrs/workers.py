"""Workers for the CQRS concurrency and crash tests: run in spawned processes or as scripts.

``python -m tests.cqrs.workers project PATH STALL_AT`` runs the asynchronous
projector of synchronization_strategies_projection.py on PATH and stalls
inside its transaction when it reaches position STALL_AT (the crash test's
victim). ``python -m tests.cqrs.workers postgres URL SCHEMA ENTRY_ID EVENTS`` does the
same with the PostgreSQL projector, after it applies entry ENTRY_ID of EVENTS
(a JSON list of events).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from snippets.cqrs.command_side_handler import (
    CommandHandler,
    ConcurrencyError,
    GoalStore,
    LogSession,
    decide,
    fingerprint,
)

GOAL = "shared"


def race_rounds(path: str, barrier: Any, results: Any, worker: int, rounds: int) -> None:
    """Each round, every worker loads the goal, waits for the others, then appends."""
    store = GoalStore(path)
    for round_ in range(rounds):
        command = LogSession(f"c-{worker}-{round_}", GOAL, f"e-{worker}-{round_}", "2025-03-04")
        goal = store.load(GOAL)
        barrier.wait(60)
        try:
            result = store.append(command.command_id, fingerprint(command), f"goal-{GOAL}",
                                  decide(goal, command), expected_version=goal.version)
            results.put((round_, worker, "won", result.version))
        except ConcurrencyError as error:
            results.put((round_, worker, "lost", error.actual))
        barrier.wait(60)  # the round is over for everyone before the next load
    store.close()


def log_sessions(path: str, barrier: Any, results: Any, worker: int, count: int) -> None:
    """Log ``count`` sessions through a handler that retries every conflict."""
    store = GoalStore(path)
    handler = CommandHandler(store, retries=10_000)
    barrier.wait(60)
    for i in range(count):
        handler.handle(LogSession(f"c-{worker}-{i}", GOAL, f"e-{worker}-{i}", "2025-03-04"))
    results.put(worker)
    store.close()


def stalling_projector(path: str, stall_at: int) -> None:
    """The async projector, stalled inside its transaction at ``stall_at``."""
    from snippets.cqrs.synchronization_strategies_projection import (
        JournalApp,
        summarize,
    )

    def stall(db, event) -> None:
        summarize(db, event)
        if event.position == stall_at:
            print("mid-batch", flush=True)
            time.sleep(600)  # killed here, with half a batch applied and nothing committed

    app = JournalApp(path, mode="async", projections=[stall], batch_size=50)
    app.start()
    app._thread.join()


def stalling_postgres_projector(url: str, schema: str, stall_at: str, events: str) -> None:
    """The PostgreSQL projector, stalled inside its transaction after applying entry
    ``stall_at`` (its connection is wrapped to watch the statements go by)."""
    from snippets.cqrs.query_side_postgres import Event, EventList, PostgresProjector

    source = EventList()
    source.events = [Event(*row) for row in json.loads(events)]
    projector = PostgresProjector(url, schema=schema, batch_size=20)
    conn = projector.conn

    class Stalling:
        def __getattr__(self, name: str) -> Any:
            return getattr(conn, name)

        def execute(self, sql: str, params: Any = None) -> Any:
            result = conn.execute(sql, params)
            if isinstance(params, dict) and params.get("entry_id") == stall_at:
                print("mid-batch", flush=True)
                time.sleep(600)  # killed with a transaction open on the server
            return result

    projector.conn = Stalling()
    projector.catch_up(source)


if __name__ == "__main__":
    if sys.argv[1] == "project":
        stalling_projector(sys.argv[2], int(sys.argv[3]))
    else:
        stalling_postgres_projector(*sys.argv[2:6])
