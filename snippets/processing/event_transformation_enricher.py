"""A content enricher: add goal titles to an entry event, and decide what a failed lookup means.

An ``EntryWritten`` event names the goals it mentions by id. The coaching
agents want titles, so the enricher looks them up in the goals service,
with a cache (titles change rarely) and a deadline (a slow lookup must not
hold the consumer). When the lookup fails, there are three honest answers:

* **stale**: a cached title older than the TTL is still a good title; use it
  and say so.
* **degraded**: no title at all; emit the event with ``title: None`` and an
  ``enrichment`` note, so consumers can tell "missing" from "empty".
* **failed**: when the title is required, raise, so the message is retried
  and eventually dead-lettered instead of travelling on half-built.

The input event is never modified: the enricher returns a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Lookup = Callable[[list[str]], Awaitable[dict[str, str]]]


class EnrichmentError(Exception):
    """A required enrichment could not be made; retry the message later."""


# --8<-- [start:enricher]
class GoalEnricher:
    """Adds ``goals: [{id, title}]`` and an ``enrichment`` note to entry events.

    Args:
        lookup: fetches titles for a batch of goal ids (missing ids: unknown goals).
        ttl: seconds a cached title counts as fresh.
        timeout: seconds one lookup may take.
        required: raise :class:`EnrichmentError` instead of degrading when the
            lookup fails (an unknown goal is an answer, not a failure).
        clock: monotonic seconds (inject a fake one in tests).
    """

    def __init__(self, lookup: Lookup, *, ttl: float = 300.0, timeout: float = 0.5,
                 required: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup, self.ttl, self.timeout = lookup, ttl, timeout
        self.required, self._clock = required, clock
        self._cache: dict[str, tuple[str, float]] = {}  # goal id -> (title, fetched at)

    async def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``event`` with titles, or raise if they are required and missing."""
        ids = list(dict.fromkeys(event.get("goal_ids", [])))
        now, titles, notes, failed = self._clock(), {}, [], False
        wanted = [i for i in ids if i not in self._cache or now - self._cache[i][1] > self.ttl]
        if wanted:
            try:
                found = await asyncio.wait_for(self._lookup(wanted), self.timeout)
            except Exception as error:  # down, slow or broken: decide below
                found, failure = {}, f"{type(error).__name__}: {error}".rstrip(": ")
            else:
                failure = ""
                for goal_id, title in found.items():
                    self._cache[goal_id] = (title, now)
            for goal_id in wanted:
                if goal_id in found:
                    continue
                if failure and goal_id in self._cache:
                    notes.append(f"{goal_id}: stale title ({failure})")
                    failed = True
                elif failure:
                    notes.append(f"{goal_id}: no title ({failure})")
                    failed = True
                else:
                    notes.append(f"{goal_id}: unknown goal")
        for goal_id in ids:
            titles[goal_id] = self._cache[goal_id][0] if goal_id in self._cache else None
        if self.required and failed:
            raise EnrichmentError(f"{event.get('entry_id')}: {'; '.join(notes)}")
        return {**event, "goals": [{"id": i, "title": t} for i, t in titles.items()],
                "enrichment": {"status": "degraded" if failed else "complete", "notes": notes}}
# --8<-- [end:enricher]


async def main() -> None:
    """Three entries while the goals service works, slows down, and goes away."""
    now = [0.0]
    service = {"mode": "up"}
    goals = {"g-1": "Run 5 km", "g-2": "Sleep by 23:00", "g-3": "Read 20 pages"}

    async def goals_service(ids: list[str]) -> dict[str, str]:
        if service["mode"] == "slow":
            await asyncio.Event().wait()  # never answers: the deadline decides
        if service["mode"] == "down":
            raise ConnectionError("goals service refused the connection")
        return {i: goals[i] for i in ids if i in goals}

    enricher = GoalEnricher(goals_service, ttl=60, timeout=0.05, clock=lambda: now[0])
    steps = [(0, "up", ["g-1", "g-9"]), (90, "slow", ["g-1"]), (95, "down", ["g-1", "g-3"])]
    for n, (at, mode, ids) in enumerate(steps, 1):
        now[0], service["mode"] = at, mode
        event = await enricher.enrich({"entry_id": f"e-{n}", "goal_ids": ids})
        print(f"t={at:>3} s, service {mode:<4}: e-{n} goals {event['goals']}")
        print(f"{'':>21}{event['enrichment']}")
    strict = GoalEnricher(goals_service, required=True)
    try:
        await strict.enrich({"entry_id": "e-4", "goal_ids": ["g-2"]})
    except EnrichmentError as error:
        print(f"required titles: {error} -> retry the message later")


if __name__ == "__main__":
    asyncio.run(main())
