"""The same three read models in PostgreSQL: upserts, arrays, and a locked checkpoint.

The coaching dashboard, the evening reflection summary and the coaches'
follow-up list, as on the SQLite page, with what PostgreSQL adds:

* every change is one ``INSERT ... ON CONFLICT DO UPDATE`` (an upsert), so
  the projector never reads a row to write it back;
* lists (goals worked on, notes) are ``text[]`` columns appended in SQL;
* the checkpoint row is read ``FOR UPDATE``: if two projector processes
  run, the second waits for the first to commit and then starts from its
  new checkpoint, so nothing is applied twice;
* a query reads its rows and the checkpoint in one ``REPEATABLE READ``
  transaction, one consistent snapshot.

Set ``DATABASE_URL``; the read models live in their own schema.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    stream: str
    type: str
    data: dict[str, Any]


class ProjectionError(Exception):
    """A read model failed on an event; its batch was rolled back."""


class Source(Protocol):
    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


# --8<-- [start:tables]
TABLES = """
CREATE TABLE IF NOT EXISTS checkpoints (name text PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE IF NOT EXISTS dashboard (user_id text PRIMARY KEY, entries int NOT NULL DEFAULT 0,
    words int NOT NULL DEFAULT 0, last_day date, streak int NOT NULL DEFAULT 0,
    active_goals int NOT NULL DEFAULT 0, achieved_goals int NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS dashboard_goals (goal_id text PRIMARY KEY, user_id text NOT NULL,
    title text NOT NULL, sessions int NOT NULL, target int NOT NULL, achieved boolean NOT NULL);
CREATE INDEX IF NOT EXISTS dashboard_goals_user ON dashboard_goals (user_id);
CREATE TABLE IF NOT EXISTS reflection (user_id text, day date, entries int NOT NULL DEFAULT 0,
    words int NOT NULL DEFAULT 0, mood_total int NOT NULL DEFAULT 0,
    progressed text[] NOT NULL DEFAULT '{}', achieved text[] NOT NULL DEFAULT '{}',
    notes text[] NOT NULL DEFAULT '{}', PRIMARY KEY (user_id, day));
CREATE TABLE IF NOT EXISTS reflection_goal_titles (goal_id text PRIMARY KEY, title text NOT NULL);
CREATE TABLE IF NOT EXISTS follow_ups (entry_id text PRIMARY KEY, user_id text NOT NULL,
    day date NOT NULL, mood int NOT NULL);
"""

DASHBOARD = {
    "EntryWritten": [(
        "INSERT INTO dashboard AS d (user_id, entries, words, last_day, streak) "
        "VALUES (%(user)s, 1, %(words)s, %(day)s, 1) ON CONFLICT (user_id) DO UPDATE SET "
        "entries = d.entries + 1, words = d.words + excluded.words, "
        "streak = CASE WHEN d.last_day IS NULL OR excluded.last_day > d.last_day + 1 THEN 1 "
        "WHEN excluded.last_day = d.last_day + 1 THEN d.streak + 1 ELSE d.streak END, "
        "last_day = greatest(d.last_day, excluded.last_day)")],
    "GoalSet": [
        ("INSERT INTO dashboard_goals "
         "VALUES (%(goal_id)s, %(user)s, %(title)s, 0, %(target)s, false)"),
        ("INSERT INTO dashboard AS d (user_id, active_goals) VALUES (%(user)s, 1) "
         "ON CONFLICT (user_id) DO UPDATE SET active_goals = d.active_goals + 1")],
    "SessionLogged": [
        "UPDATE dashboard_goals SET sessions = sessions + 1 WHERE goal_id = %(goal_id)s"],
    "GoalAchieved": [
        "UPDATE dashboard_goals SET achieved = true WHERE goal_id = %(goal_id)s",
        ("UPDATE dashboard SET active_goals = active_goals - 1, "
         "achieved_goals = achieved_goals + 1 WHERE user_id = %(user)s")],
}

_DAY = ("INSERT INTO reflection AS r (user_id, day, {column}) VALUES (%(user)s, %(day)s, {value}) "
        "ON CONFLICT (user_id, day) DO UPDATE SET {update}")
_TITLE = "(SELECT title FROM reflection_goal_titles WHERE goal_id = %(goal_id)s)"
REFLECTION = {
    "GoalSet": ["INSERT INTO reflection_goal_titles VALUES (%(goal_id)s, %(title)s)"],
    "EntryWritten": [_DAY.format(
        column="entries, words, mood_total", value="1, %(words)s, %(mood)s",
        update="entries = r.entries + 1, words = r.words + excluded.words, "
               "mood_total = r.mood_total + excluded.mood_total")],
    "SessionLogged": [_DAY.format(
        column="progressed", value=f"ARRAY[{_TITLE}]",
        update="progressed = CASE WHEN excluded.progressed[1] = ANY(r.progressed) "
               "THEN r.progressed ELSE r.progressed || excluded.progressed END")],
    "GoalAchieved": [_DAY.format(column="achieved", value=f"ARRAY[{_TITLE}]",
                                 update="achieved = r.achieved || excluded.achieved")],
    "InsightRecorded": [_DAY.format(column="notes", value="ARRAY[%(agent)s || ': ' || %(text)s]",
                                    update="notes = r.notes || excluded.notes")],
}

FOLLOW_UPS = {
    "EntryWritten": [("INSERT INTO follow_ups SELECT %(entry_id)s, %(user)s, %(day)s, "
                      "%(mood)s WHERE %(mood)s <= 2")],
    "InsightRecorded": ["DELETE FROM follow_ups WHERE user_id = %(user)s AND day <= %(day)s"],
}
READ_MODELS = {"coaching_dashboard": DASHBOARD, "evening_reflection": REFLECTION,
               "follow_ups": FOLLOW_UPS}
# --8<-- [end:tables]


def connect(url: str, schema: str) -> psycopg.Connection[Any]:
    """A connection whose tables are those of ``schema`` (created if missing)."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use a-z, 0-9 and _")
    conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    with conn.transaction():  # concurrent first starts must not race on DDL
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(TABLES)
        for name in READ_MODELS:
            conn.execute("INSERT INTO checkpoints VALUES (%s, 0) ON CONFLICT DO NOTHING", (name,))
    return conn


# --8<-- [start:projector]
def new_events(name: str, page: Sequence[Any], position: int) -> list[Any]:
    """The events of ``page`` after ``position``, each once, checked to be in order.

    Events at or below the checkpoint, and repeats within the page, are
    re-deliveries and are dropped. An event older than one already in the
    batch means the source is out of order: refused, since applying it
    would count it late and moving the checkpoint past it would lose it.
    """
    batch: list[Any] = []
    seen: set[int] = set()
    for event in page:
        last = batch[-1].position if batch else position
        if event.position > last:
            batch.append(event)
            seen.add(event.position)
        elif event.position > position and event.position not in seen:
            raise ProjectionError(f"{name}: position {event.position} arrived after position "
                                  f"{last}: the source is out of order; its batch was rolled "
                                  f"back at {position}")
    return batch


class PostgresProjector:
    """Applies events to the read models; checkpoint and rows commit together."""

    def __init__(self, url: str, *, schema: str = "read_models", batch_size: int = 100) -> None:
        self.conn, self.batch_size = connect(url, schema), batch_size

    def catch_up(self, source: Source) -> int:
        """Apply everything new to every read model; return the events applied."""
        applied = 0
        for name, statements in READ_MODELS.items():
            while True:
                with self.conn.transaction():
                    (position,) = self.conn.execute(  # a second projector waits here
                        "SELECT position FROM checkpoints WHERE name = %s FOR UPDATE",
                        (name,)).fetchone()
                    page = source.read_all(after=position, limit=self.batch_size)
                    batch = new_events(name, page, position)
                    for event in batch:
                        try:
                            for sql in statements.get(event.type, ()):
                                self.conn.execute(sql, event.data)
                        except psycopg.Error as error:
                            raise ProjectionError(
                                f"{name} failed at position {event.position} ({event.stream} "
                                f"{event.type}): {type(error).__name__} "
                                f"{str(error).splitlines()[0]}; its batch "
                                f"was rolled back at {position}") from error
                    if batch:
                        self.conn.execute("UPDATE checkpoints SET position = %s WHERE name = %s",
                                          (batch[-1].position, name))
                applied += len(batch)
                if not batch or len(page) < self.batch_size:
                    break
        return applied

    def close(self) -> None:
        self.conn.close()
# --8<-- [end:projector]


@dataclass(frozen=True, slots=True)
class GoalLine:
    title: str
    sessions: int
    target: int
    achieved: bool


@dataclass(frozen=True, slots=True)
class Dashboard:
    user: str
    entries: int
    words: int
    last_day: str | None
    streak: int
    active_goals: int
    achieved_goals: int
    goals: tuple[GoalLine, ...]
    as_of: int


@dataclass(frozen=True, slots=True)
class Reflection:
    user: str
    day: str
    entries: int
    words: int
    mood: float | None
    progressed: tuple[str, ...]
    achieved: tuple[str, ...]
    notes: tuple[str, ...]
    as_of: int


# --8<-- [start:queries]
class PostgresQueries:
    """Query handlers: each reads one snapshot (rows and checkpoint) and never writes."""

    def __init__(self, url: str, *, schema: str = "read_models") -> None:
        self.conn = connect(url, schema)

    def dashboard(self, user: str) -> Dashboard | None:
        with self._snapshot("coaching_dashboard") as as_of:
            row = self.conn.execute("SELECT user_id, entries, words, last_day::text, streak, "
                                    "active_goals, achieved_goals FROM dashboard "
                                    "WHERE user_id = %s", (user,)).fetchone()
            goals = self.conn.execute("SELECT title, sessions, target, achieved FROM "
                                      "dashboard_goals WHERE user_id = %s ORDER BY goal_id",
                                      (user,)).fetchall()
        if row is None:
            return None
        return Dashboard(*row, tuple(GoalLine(*goal) for goal in goals), as_of)

    def evening_reflection(self, user: str, day: str) -> Reflection | None:
        with self._snapshot("evening_reflection") as as_of:
            row = self.conn.execute("SELECT entries, words, mood_total, progressed, achieved, "
                                    "notes FROM reflection WHERE user_id = %s AND day = %s",
                                    (user, day)).fetchone()
        if row is None:
            return None
        entries, words, mood, progressed, achieved, notes = row
        return Reflection(user, day, entries, words, mood / entries if entries else None,
                          tuple(progressed), tuple(achieved), tuple(notes), as_of)

    def follow_ups(self) -> list[tuple[str, str, str, int]]:
        """(day, user, entry_id, mood) of every low-mood entry no coach has answered."""
        return self.conn.execute("SELECT day::text, user_id, entry_id, mood FROM follow_ups "
                                 "ORDER BY day, entry_id").fetchall()

    @contextmanager
    def _snapshot(self, name: str) -> Iterator[int]:
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield self.conn.execute("SELECT position FROM checkpoints WHERE name = %s",
                                    (name,)).fetchone()[0]

    def close(self) -> None:
        self.conn.close()
# --8<-- [end:queries]


class EventList:
    """A list of events with ``read_all``, standing in for the event store in main()."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, stream: str, type_: str, **data: Any) -> None:
        self.events.append(Event(len(self.events) + 1, stream, type_, data))

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list[Event]:
        return self.events[after:after + limit]


def coaching_week(source: EventList) -> None:
    """Ana's and Ben's first days with the app (the SQLite page's events)."""
    source.add("goal-run", "GoalSet", user="ana", goal_id="run", title="Run 5 km", target=2)
    source.add("goal-read", "GoalSet", user="ana", goal_id="read", title="Read daily", target=7)
    for user, entry, day, words, mood in [("ana", "e1", "2025-03-03", 180, 4),
                                          ("ben", "e2", "2025-03-03", 90, 2),
                                          ("ana", "e3", "2025-03-04", 240, 3),
                                          ("ana", "e4", "2025-03-04", 60, 2)]:
        source.add(f"journal-{user}", "EntryWritten", user=user, entry_id=entry, day=day,
                   words=words, mood=mood)
    for goal, entry, day in [("run", "e1", "2025-03-03"), ("read", "e3", "2025-03-04"),
                             ("run", "e3", "2025-03-04")]:
        source.add(f"goal-{goal}", "SessionLogged", user="ana", goal_id=goal, entry_id=entry,
                   day=day)
    source.add("goal-run", "GoalAchieved", user="ana", goal_id="run", day="2025-03-04",
               sessions=2)
    source.add("coach-ben", "InsightRecorded", user="ben", day="2025-03-03", agent="mood",
               text="A hard day; tomorrow, try writing one thing that went well.")


def main() -> None:
    """The SQLite page's scenario on PostgreSQL, in a demo schema reset on each run."""
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("DROP SCHEMA IF EXISTS cqrs_demo CASCADE")
    except psycopg.OperationalError as error:
        print(f"No PostgreSQL at {url}: set DATABASE_URL to a database you may write to.\n"
              f"({str(error).strip().splitlines()[0]})", file=sys.stderr)
        raise SystemExit(1) from None
    source = EventList()
    coaching_week(source)
    projector = PostgresProjector(url, schema="cqrs_demo", batch_size=5)
    queries = PostgresQueries(url, schema="cqrs_demo")
    print(f"applied        : {projector.catch_up(source)} events")
    ana = queries.dashboard("ana")
    print(f"dashboard      : {ana.user}: {ana.entries} entries, {ana.words} words, "
          f"streak {ana.streak} days to {ana.last_day}, goals {ana.active_goals} active, "
          f"{ana.achieved_goals} achieved (as of position {ana.as_of})")
    for goal in ana.goals:
        print(f"  goal         : {goal.title:<11} {goal.sessions}/{goal.target}"
              f"{'  achieved' if goal.achieved else ''}")
    for user, day in [("ana", "2025-03-04"), ("ben", "2025-03-03")]:
        r = queries.evening_reflection(user, day)
        print(f"reflection     : {user} {day}: entries={r.entries} words={r.words} "
              f"mood={r.mood:.1f} worked on {list(r.progressed)}, achieved {list(r.achieved)}, "
              f"notes {list(r.notes)}")
    print(f"follow-ups     : {queries.follow_ups()}")
    source.add("coach-ana", "InsightRecorded", user="ana", day="2025-03-04", agent="goal",
               text="Two runs in two days: the goal is done.")
    print(f"one more event : applied {projector.catch_up(source)} (once per read model); "
          f"follow-ups now {queries.follow_ups()}")
    positions = projector.conn.execute("SELECT * FROM checkpoints ORDER BY name").fetchall()
    print(f"checkpoints    : {positions}")
    projector.close()
    queries.close()


if __name__ == "__main__":
    main()
