"""API composition or a CQRS view: two ways to answer a query that spans services.

With a database per service, the journal service owns the entries and the
goals service owns the goals; neither can join the other's tables. The
coaching overview needs both, and there are two ways to build it:

* API composition: at query time, call both services (in parallel, each
  with a timeout) and join their answers in memory. Always current, but only
  as available as the slowest, least available service, and a question
  about many users costs a call per user unless a service has a bulk API.
* A CQRS view: a read model of its own, fed by the events both services
  publish. One local query that still answers when a service is down, but
  only as current as the last event it has applied.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class ServiceUnavailableError(Exception):
    """A service refused the call (it is down)."""


@dataclass
class EventLog:
    """What the services publish (through their outboxes), in one order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, type_: str, **data: Any) -> None:
        self.events.append((type_, data))


# --8<-- [start:services]
class Service:
    """A service with its own database; ``state`` is "up", "down" or "hanging"."""

    name = "service"

    def __init__(self, log: EventLog, schema: str) -> None:
        self.db, self.log, self.state = sqlite3.connect(":memory:"), log, "up"
        self.db.executescript(schema)

    async def _reachable(self) -> None:
        await asyncio.sleep(0)  # a network hop
        if self.state == "down":
            raise ServiceUnavailableError(f"{self.name} service refused the connection")
        if self.state == "hanging":
            await asyncio.Event().wait()  # never answers: only a timeout ends the call


class JournalService(Service):
    name = "journal"

    def __init__(self, log: EventLog) -> None:
        super().__init__(log, "CREATE TABLE entries (entry_id TEXT PRIMARY KEY, "
                              "user_id TEXT, day TEXT, words INT)")

    def write_entry(self, user: str, entry_id: str, day: str, words: int) -> None:
        self.db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (entry_id, user, day, words))
        self.log.publish("EntryWritten", user=user, entry_id=entry_id, day=day, words=words)

    async def day_of(self, user: str, day: str) -> tuple[int, int]:
        """GET /users/{user}/days/{day}: (entries, words)."""
        await self._reachable()
        return self.db.execute("SELECT count(*), coalesce(sum(words), 0) FROM entries "
                               "WHERE user_id = ? AND day = ?", (user, day)).fetchone()

    async def writers_on(self, day: str) -> list[str]:
        """GET /days/{day}/writers."""
        await self._reachable()
        return [u for (u,) in self.db.execute("SELECT DISTINCT user_id FROM entries "
                                              "WHERE day = ? ORDER BY 1", (day,))]


class GoalsService(Service):
    name = "goals"

    def __init__(self, log: EventLog) -> None:
        super().__init__(log, "CREATE TABLE goals (goal_id TEXT PRIMARY KEY, user_id TEXT, "
                              "title TEXT, target INT); CREATE TABLE sessions (goal_id TEXT, "
                              "day TEXT)")

    def set_goal(self, user: str, goal_id: str, title: str, target: int) -> None:
        self.db.execute("INSERT INTO goals VALUES (?, ?, ?, ?)", (goal_id, user, title, target))
        self.log.publish("GoalSet", user=user, goal_id=goal_id, title=title, target=target)

    def log_session(self, user: str, goal_id: str, day: str) -> None:
        self.db.execute("INSERT INTO sessions VALUES (?, ?)", (goal_id, day))
        self.log.publish("SessionLogged", user=user, goal_id=goal_id, day=day)

    async def goals_of(self, user: str) -> list[str]:
        """GET /users/{user}/goals: "title sessions/target" lines."""
        await self._reachable()
        return [f"{t} {s}/{n}" for t, s, n in self.db.execute(
            "SELECT title, (SELECT count(*) FROM sessions s WHERE s.goal_id = g.goal_id), "
            "target FROM goals g WHERE user_id = ? ORDER BY goal_id", (user,))]

    async def sessions_on(self, user: str, day: str) -> int:
        """GET /users/{user}/sessions?day={day}."""
        await self._reachable()
        return self.db.execute("SELECT count(*) FROM sessions JOIN goals USING (goal_id) "
                               "WHERE user_id = ? AND day = ?", (user, day)).fetchone()[0]
# --8<-- [end:services]


# --8<-- [start:composer]
class Composer:
    """API composition: call the services at query time and join in memory."""

    def __init__(self, journal: JournalService, goals: GoalsService, *,
                 timeout: float = 0.1) -> None:
        self.journal, self.goals, self.timeout = journal, goals, timeout
        self.calls: Counter[str] = Counter()

    async def _call(self, service: Service, call: Awaitable[T]) -> T:
        self.calls[service.name] += 1
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise ServiceUnavailableError(f"{service.name} service: no answer in "
                                          f"{self.timeout} s") from None

    async def overview(self, user: str, day: str) -> dict[str, Any]:
        """Both calls at once; a failed part is reported as missing, not hidden."""
        day_of, goals = await asyncio.gather(
            self._call(self.journal, self.journal.day_of(user, day)),
            self._call(self.goals, self.goals.goals_of(user)), return_exceptions=True)
        missing = [str(part) for part in (day_of, goals) if isinstance(part, Exception)]
        entries, words = (None, None) if isinstance(day_of, Exception) else day_of
        return {"entries": entries, "words": words,
                "goals": None if isinstance(goals, Exception) else goals, "missing": missing}

    async def idle_writers(self, day: str) -> list[str]:
        """Who wrote on ``day`` but logged no session: one call, then one per writer."""
        writers = await self._call(self.journal, self.journal.writers_on(day))
        counts = await asyncio.gather(*(self._call(self.goals, self.goals.sessions_on(u, day))
                                        for u in writers))
        return [user for user, count in zip(writers, counts, strict=True) if count == 0]
# --8<-- [end:composer]


# --8<-- [start:view]
class OverviewView:
    """The CQRS alternative: one local read model, fed by both services' events."""

    def __init__(self) -> None:
        self.db, self.position, self.queries = sqlite3.connect(":memory:"), 0, 0
        self.db.executescript(
            "CREATE TABLE days (user_id TEXT, day TEXT, entries INT, words INT, sessions INT, "
            "PRIMARY KEY (user_id, day)); CREATE TABLE goals (goal_id TEXT PRIMARY KEY, "
            "user_id TEXT, title TEXT, sessions INT, target INT);")

    def catch_up(self, log: EventLog) -> int:
        """Apply what the services published since the last call (a subscription).

        All or nothing: an event that fails rolls back the whole call, and the
        position stays where it was, so a retry applies each event once."""
        new = log.events[self.position:]
        with self.db:  # one transaction: committed at the end, rolled back on an error
            self._apply(new)
        self.position += len(new)
        return len(new)

    def _apply(self, new: list[tuple[str, dict[str, Any]]]) -> None:
        for type_, d in new:
            if type_ in ("EntryWritten", "SessionLogged"):
                self.db.execute("INSERT OR IGNORE INTO days VALUES (?, ?, 0, 0, 0)",
                                (d["user"], d["day"]))
            if type_ == "EntryWritten":
                self.db.execute("UPDATE days SET entries = entries + 1, words = words + ? "
                                "WHERE user_id = ? AND day = ?", (d["words"], d["user"], d["day"]))
            elif type_ == "GoalSet":
                self.db.execute("INSERT INTO goals VALUES (?, ?, ?, 0, ?)",
                                (d["goal_id"], d["user"], d["title"], d["target"]))
            elif type_ == "SessionLogged":
                self.db.execute("UPDATE days SET sessions = sessions + 1 WHERE user_id = ? "
                                "AND day = ?", (d["user"], d["day"]))
                self.db.execute("UPDATE goals SET sessions = sessions + 1 WHERE goal_id = ?",
                                (d["goal_id"],))

    def overview(self, user: str, day: str) -> dict[str, Any]:
        self.queries += 1
        entries, words = self.db.execute("SELECT coalesce(sum(entries), 0), coalesce(sum(words), "
                                          "0) FROM days WHERE user_id = ? AND day = ?",
                                          (user, day)).fetchone()
        goals = [f"{t} {s}/{n}" for t, s, n in self.db.execute(
            "SELECT title, sessions, target FROM goals WHERE user_id = ? ORDER BY goal_id",
            (user,))]
        return {"entries": entries, "words": words, "goals": goals, "as_of": self.position}

    def idle_writers(self, day: str) -> list[str]:
        self.queries += 1
        return [u for (u,) in self.db.execute("SELECT user_id FROM days WHERE day = ? AND "
                                              "entries > 0 AND sessions = 0 ORDER BY 1", (day,))]
# --8<-- [end:view]


# --8<-- [start:demo]
async def main() -> None:
    """The same questions answered by composition and by a view, with services failing."""
    log = EventLog()
    journal, goals = JournalService(log), GoalsService(log)
    goals.set_goal("ana", "run", "Run 5 km", 3)
    for user, entry, words in [("ana", "e1", 180), ("ben", "e2", 90), ("cy", "e3", 240),
                               ("ana", "e4", 120)]:
        journal.write_entry(user, entry, "2025-03-04", words)
    goals.log_session("ana", "run", "2025-03-04")
    composer, view = Composer(journal, goals), OverviewView()
    view.catch_up(log)
    day = "2025-03-04"

    print(f"composed       : {await composer.overview('ana', day)}, calls {dict(composer.calls)}")
    print(f"view           : {view.overview('ana', day)}")
    composer.calls.clear()
    print(f"idle writers   : composed {await composer.idle_writers(day)} with "
          f"{sum(composer.calls.values())} calls; view {view.idle_writers(day)} with 1 query")

    goals.state = "hanging"
    print(f"goals hangs    : composed {await composer.overview('ana', day)}")
    journal.state = "down"
    print(f"journal down   : composed {await composer.overview('ana', day)}")
    print(f"               : view     {view.overview('ana', day)}")

    journal.state = goals.state = "up"
    journal.write_entry("ana", "e5", day, 60)  # published, not yet applied by the view
    print(f"new entry      : composed {(await composer.overview('ana', day))['entries']} "
          f"entries, view {view.overview('ana', day)['entries']} (stale)")
    view.catch_up(log)
    print(f"view caught up : {view.overview('ana', day)}")


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:demo]
