"""What one query costs with a read model and without: rows read against events replayed.

The coaching dashboard (entries, words, sessions and coach notes per user)
can be answered from its read model, a row per user kept current as events
are appended, or recomputed at query time by replaying events. Both give
the same answer. This module counts the work each way does per query; the
page's benchmark times the same functions at 1,000 and 100,000 events.

Recomputing comes in two kinds: replay the whole log (what a query must do
when the store cannot find a user's events), or replay only the user's
events through an index on a ``user_id`` column stored with each event.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
    user_id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, position);
CREATE TABLE IF NOT EXISTS dashboard (user_id TEXT PRIMARY KEY, entries INT NOT NULL,
    words INT NOT NULL, sessions INT NOT NULL, notes INT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Dashboard:
    user: str
    entries: int = 0
    words: int = 0
    sessions: int = 0
    notes: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    dashboard: Dashboard
    work: int  # rows or events the query had to read


# --8<-- [start:write]
CHANGES = {"EntryWritten": "entries = entries + 1, words = words + :words",
           "SessionLogged": "sessions = sessions + 1", "InsightRecorded": "notes = notes + 1"}


class CoachingStore:
    """Events and the dashboard read model in one SQLite database, updated together."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(SCHEMA)

    def append(self, events: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Append (stream, type, data) events and project them, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for stream, type_, data in events:
                self.db.execute("INSERT INTO events (stream, user_id, type, data) "
                                "VALUES (?, ?, ?, ?)", (stream, data["user"], type_,
                                                        json.dumps(data)))
                self.db.execute("INSERT OR IGNORE INTO dashboard VALUES (?, 0, 0, 0, 0)",
                                (data["user"],))
                self.db.execute(f"UPDATE dashboard SET {CHANGES[type_]} "
                                "WHERE user_id = :user", data)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return self.db.execute("SELECT max(position) FROM events").fetchone()[0]
# --8<-- [end:write]

    # --8<-- [start:read]
    def from_read_model(self, user: str) -> Answer:
        """One primary-key lookup, however long the history."""
        row = self.db.execute("SELECT * FROM dashboard WHERE user_id = ?", (user,)).fetchone()
        return Answer(Dashboard(*row) if row else Dashboard(user), 1)

    def recompute_from_log(self, user: str) -> Answer:
        """Replay every event in the store and keep the user's."""
        rows = self.db.execute("SELECT type, data FROM events ORDER BY position")
        return self._fold(user, rows, only_user=True)

    def recompute_from_user_events(self, user: str) -> Answer:
        """Replay the user's events, found through the ``user_id`` index."""
        rows = self.db.execute("SELECT type, data FROM events WHERE user_id = ? "
                               "ORDER BY position", (user,))
        return self._fold(user, rows, only_user=False)

    @staticmethod
    def _fold(user: str, rows: Any, *, only_user: bool) -> Answer:
        entries = words = sessions = notes = read = 0
        for type_, text in rows:
            read += 1
            data = json.loads(text)
            if only_user and data["user"] != user:
                continue
            if type_ == "EntryWritten":
                entries, words = entries + 1, words + data["words"]
            elif type_ == "SessionLogged":
                sessions += 1
            else:  # InsightRecorded, the only other type the store accepts
                notes += 1
        return Answer(Dashboard(user, entries, words, sessions, notes), read)
    # --8<-- [end:read]


def coaching_history(count: int, users: int) -> list[tuple[str, str, dict[str, Any]]]:
    """``count`` events spread evenly over ``users`` users, the same on every run."""
    events = []
    for i in range(count):
        user = f"u{i % users:03}"
        kind = i // users % 10
        if kind < 6:
            events.append((f"journal-{user}", "EntryWritten",
                           {"user": user, "entry_id": f"e{i}", "words": 50 + i * 37 % 400}))
        elif kind < 9:
            events.append((f"goal-{user}-{i % 3}", "SessionLogged",
                           {"user": user, "entry_id": f"e{i - users}"}))
        else:
            events.append((f"coach-{user}", "InsightRecorded", {"user": user, "text": "Nice."}))
    return events


# --8<-- [start:demo]
def main() -> None:
    """The same dashboard three ways, at two sizes: same answer, different work."""
    for count, users in [(1_000, 10), (10_000, 10)]:
        store, events = CoachingStore(), coaching_history(count, users)
        for start in range(0, count, 1_000):
            store.append(events[start:start + 1_000])
        answers = {"read model": store.from_read_model("u003"),
                   "recompute, whole log": store.recompute_from_log("u003"),
                   "recompute, user's events": store.recompute_from_user_events("u003")}
        print(f"{count:,} events, {users} users: {answers['read model'].dashboard}")
        for name, answer in answers.items():
            same = answer.dashboard == answers["read model"].dashboard
            print(f"  {name:<25}: reads {answer.work:>6,} rows, same answer: {same}")


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
