"""The query side of CQRS: read models shaped like their screens, all fed by the same events.

Three read models are built from one stream of coaching events, each stored
the way its one question wants it, so that every query is a key lookup with
no join, sum or sort over history at read time:

* the coaching dashboard: a row per user (entries, words, writing streak,
  goals active and achieved) and a row per goal;
* the evening reflection summary: a row per user and day (entries, words,
  mood, goals worked on and achieved, the coaches' notes);
* the coaches' follow-up list: entries written in a low mood (1 or 2 of 5)
  that no coach has answered yet.

A projector applies events in batches and saves each read model's
checkpoint in the same SQLite transaction as its rows, so a crash or a
re-delivery never counts an event twice. Query handlers only read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    stream: str
    type: str
    data: dict[str, Any]


class Source(Protocol):
    """Anything with an event store's ``read_all``."""

    def read_all(self, *, after: int = 0, limit: int = 1000) -> Sequence[Any]: ...


class ProjectionError(Exception):
    """A read model failed on an event; its batch was rolled back."""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# --8<-- [start:dashboard]
class CoachingDashboard:
    """A row per user and a row per goal: the dashboard reads two rows' worth."""

    name = "coaching_dashboard"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS dashboard (user_id TEXT PRIMARY KEY, "
                   "entries INTEGER DEFAULT 0, words INTEGER DEFAULT 0, last_day TEXT, "
                   "streak INTEGER DEFAULT 0, active_goals INTEGER DEFAULT 0, "
                   "achieved_goals INTEGER DEFAULT 0)")
        db.execute("CREATE TABLE IF NOT EXISTS dashboard_goals (goal_id TEXT PRIMARY KEY, "
                   "user_id TEXT, title TEXT, sessions INTEGER, target INTEGER, achieved INTEGER)")
        db.execute("CREATE INDEX IF NOT EXISTS dashboard_goals_user ON dashboard_goals (user_id)")

    def apply(self, db: sqlite3.Connection, event: Event) -> None:
        d = event.data
        if event.type in ("EntryWritten", "GoalSet"):
            db.execute("INSERT OR IGNORE INTO dashboard (user_id) VALUES (?)", (d["user"],))
        match event.type:
            case "EntryWritten":  # the streak counts consecutive days up to the last entry
                db.execute("UPDATE dashboard SET entries = entries + 1, words = words + :words, "
                           "streak = CASE WHEN last_day IS NULL OR :day > date(last_day, '+1 day') "
                           "THEN 1 WHEN :day = date(last_day, '+1 day') THEN streak + 1 "
                           "ELSE streak END, last_day = max(coalesce(last_day, :day), :day) "
                           "WHERE user_id = :user", d)
            case "GoalSet":
                db.execute("INSERT INTO dashboard_goals VALUES (?, ?, ?, 0, ?, 0)",
                           (d["goal_id"], d["user"], d["title"], d["target"]))
                db.execute("UPDATE dashboard SET active_goals = active_goals + 1 WHERE user_id = ?",
                           (d["user"],))
            case "SessionLogged":
                db.execute("UPDATE dashboard_goals SET sessions = sessions + 1 WHERE goal_id = ?",
                           (d["goal_id"],))
            case "GoalAchieved":
                db.execute("UPDATE dashboard_goals SET achieved = 1 WHERE goal_id = ?",
                           (d["goal_id"],))
                db.execute("UPDATE dashboard SET active_goals = active_goals - 1, "
                           "achieved_goals = achieved_goals + 1 WHERE user_id = ?", (d["user"],))
# --8<-- [end:dashboard]


# --8<-- [start:reflection]
class EveningReflection:
    """A row per user and day, ready to be read out in the evening."""

    name = "evening_reflection"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS reflection (user_id TEXT, day TEXT, entries INTEGER, "
                   "words INTEGER, mood_total INTEGER, progressed TEXT, achieved TEXT, "
                   "notes TEXT, PRIMARY KEY (user_id, day))")
        # A private lookup: SessionLogged carries a goal id, the summary wants its title.
        db.execute("CREATE TABLE IF NOT EXISTS reflection_goal_titles "
                   "(goal_id TEXT PRIMARY KEY, title TEXT)")

    def apply(self, db: sqlite3.Connection, event: Event) -> None:
        d = event.data
        if event.type == "GoalSet":
            db.execute("INSERT INTO reflection_goal_titles VALUES (?, ?)",
                       (d["goal_id"], d["title"]))
            return
        if event.type not in ("EntryWritten", "SessionLogged", "GoalAchieved", "InsightRecorded"):
            return
        row = db.execute("SELECT entries, words, mood_total, progressed, achieved, notes FROM "
                         "reflection WHERE user_id = ? AND day = ?", (d["user"], d["day"])).fetchone()
        entries, words, mood, *lists = row or (0, 0, 0, "[]", "[]", "[]")
        progressed, achieved, notes = (json.loads(text) for text in lists)
        if event.type == "EntryWritten":
            entries, words, mood = entries + 1, words + d["words"], mood + d["mood"]
        elif event.type == "InsightRecorded":
            notes.append(f"{d['agent']}: {d['text']}")
        else:
            (title,) = db.execute("SELECT title FROM reflection_goal_titles WHERE goal_id = ?",
                                  (d["goal_id"],)).fetchone()
            if event.type == "GoalAchieved":
                achieved.append(title)
            elif title not in progressed:
                progressed.append(title)
        db.execute("INSERT OR REPLACE INTO reflection VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (d["user"], d["day"], entries, words, mood, json.dumps(progressed),
                    json.dumps(achieved), json.dumps(notes)))
# --8<-- [end:reflection]


class FollowUps:
    """Low-mood entries that wait for a coach; an insight for that user clears them."""

    name = "follow_ups"

    def create(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS follow_ups (entry_id TEXT PRIMARY KEY, "
                   "user_id TEXT, day TEXT, mood INTEGER)")

    def apply(self, db: sqlite3.Connection, event: Event) -> None:
        d = event.data
        if event.type == "EntryWritten" and d["mood"] <= 2:
            db.execute("INSERT INTO follow_ups VALUES (?, ?, ?, ?)",
                       (d["entry_id"], d["user"], d["day"], d["mood"]))
        elif event.type == "InsightRecorded":
            db.execute("DELETE FROM follow_ups WHERE user_id = ? AND day <= ?", (d["user"], d["day"]))


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


class Projector:
    """Keeps read models up to date, each with its own checkpoint in its own transaction."""

    def __init__(self, db: sqlite3.Connection, read_models: Sequence[Any], *,
                 batch_size: int = 100) -> None:
        db.isolation_level = None  # explicit transactions only
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the projector's commits
        self.db, self.read_models, self.batch_size = db, list(read_models), batch_size
        db.execute("CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INT)")
        for model in self.read_models:
            model.create(db)
            db.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, 0)", (model.name,))

    def position(self, name: str) -> int:
        return self.db.execute("SELECT position FROM checkpoints WHERE name = ?",
                               (name,)).fetchone()[0]

    def catch_up(self, source: Source) -> int:
        """Apply everything new to every read model; return the events applied."""
        applied = 0
        for model in self.read_models:
            while True:
                with transaction(self.db):  # rows and checkpoint: both or neither
                    position = self.position(model.name)
                    page = source.read_all(after=position, limit=self.batch_size)
                    batch = new_events(model.name, page, position)
                    for event in batch:
                        try:
                            model.apply(self.db, event)
                        except Exception as error:
                            raise ProjectionError(
                                f"{model.name} failed at position {event.position} ("
                                f"{event.stream} {event.type}): {type(error).__name__} {error}; "
                                f"its batch was rolled back at {position}") from error
                    if batch:
                        self.db.execute("UPDATE checkpoints SET position = ? WHERE name = ?",
                                        (batch[-1].position, model.name))
                applied += len(batch)
                if not batch or len(page) < self.batch_size:
                    break
        return applied
# --8<-- [end:projector]


# --8<-- [start:queries]
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
    as_of: int  # the position the read model had reached


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

    def text(self) -> str:
        """The summary as the evening message says it."""
        mood = "no entry" if self.mood is None else f"mood {self.mood:.1f}/5"
        entries = f"{self.entries} entr{'y' if self.entries == 1 else 'ies'}"
        lines = [f"{self.day}: {entries}, {self.words} words, {mood}",
                 f"worked on: {', '.join(self.progressed) or 'no goal'}"]
        lines += [f"achieved: {title}" for title in self.achieved]
        return "\n".join(lines + [f"coach {note}" for note in self.notes])


class CoachingQueries:
    """Query handlers: read-only, one read model each, never a replay.

    Each query reads its rows and the checkpoint in one read transaction, so
    it sees one consistent state even while the projector commits.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        db.isolation_level = None
        self.db = db

    def dashboard(self, user: str) -> Dashboard | None:
        with self._snapshot(CoachingDashboard.name) as as_of:
            row = self.db.execute("SELECT * FROM dashboard WHERE user_id = ?", (user,)).fetchone()
            goals = self.db.execute("SELECT title, sessions, target, achieved FROM "
                                    "dashboard_goals WHERE user_id = ? ORDER BY goal_id",
                                    (user,)).fetchall()
        if row is None:
            return None
        return Dashboard(*row, tuple(GoalLine(t, s, n, bool(a)) for t, s, n, a in goals), as_of)

    def evening_reflection(self, user: str, day: str) -> Reflection | None:
        with self._snapshot(EveningReflection.name) as as_of:
            row = self.db.execute("SELECT * FROM reflection WHERE user_id = ? AND day = ?",
                                  (user, day)).fetchone()
        if row is None:
            return None
        _, _, entries, words, mood, *lists = row
        progressed, achieved, notes = (tuple(json.loads(text)) for text in lists)
        return Reflection(user, day, entries, words, mood / entries if entries else None,
                          progressed, achieved, notes, as_of)

    def follow_ups(self) -> list[tuple[str, str, str, int]]:
        """(day, user, entry_id, mood) of every low-mood entry no coach has answered."""
        return self.db.execute("SELECT day, user_id, entry_id, mood FROM follow_ups "
                               "ORDER BY day, entry_id").fetchall()

    @contextmanager
    def _snapshot(self, name: str) -> Iterator[int]:
        self.db.execute("BEGIN")  # deferred: a read snapshot, no write lock
        try:
            yield self.db.execute("SELECT position FROM checkpoints WHERE name = ?",
                                  (name,)).fetchone()[0]
        finally:
            self.db.execute("COMMIT")
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
    """Ana's and Ben's first days with the app."""
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


# --8<-- [start:demo]
def main() -> None:
    """Three read models from one stream of events, and the queries that read them."""
    source = EventList()
    coaching_week(source)
    db = sqlite3.connect(":memory:")
    projector = Projector(db, [CoachingDashboard(), EveningReflection(), FollowUps()],
                          batch_size=5)
    print(f"applied        : {projector.catch_up(source)} events "
          f"({len(source.events)} events x 3 read models)")
    queries = CoachingQueries(db)
    ana = queries.dashboard("ana")
    print(f"dashboard      : {ana.user}: {ana.entries} entries, {ana.words} words, "
          f"streak {ana.streak} days to {ana.last_day}, goals {ana.active_goals} active, "
          f"{ana.achieved_goals} achieved (as of position {ana.as_of})")
    for goal in ana.goals:
        print(f"  goal         : {goal.title:<11} {goal.sessions}/{goal.target}"
              f"{'  achieved' if goal.achieved else ''}")
    for user, day in [("ana", "2025-03-04"), ("ben", "2025-03-03")]:
        print(f"reflection     : {user}")
        for line in queries.evening_reflection(user, day).text().splitlines():
            print(f"  {line}")
    print(f"follow-ups     : {queries.follow_ups()}")
    print(f"unknown user   : {queries.dashboard('zoe')}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
