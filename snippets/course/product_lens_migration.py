"""Strangler fig: moving one reaction from a direct call to an event, one step at a time.

The monolith's ``save_entry`` calls the goal service directly, inside its
transaction: when the goal service is down, nobody can save an entry. The
migration moves that reaction to an ``entry.created`` event without a big
bang and without losing or doubling a count at any step:

1. **Make the receiver idempotent.** ``GoalService.count_session`` records
   the entry id with the count, in one transaction, and ignores an id it
   has seen. Now a count can arrive twice, by two paths, harmlessly.
2. **Publish alongside the call** (route ``"both"``): the entry and its
   event are written in one transaction (a transactional outbox), and the
   direct call still runs. A relay delivers the events; the goal service
   skips the ones the call already counted. This is the parallel run.
3. **Switch to events** (route ``"event"``): the call is gone; entries are
   saved while the goal service is down, and counted when it is back.
   Switching back is the same flag, and is just as safe.
"""

from __future__ import annotations

import sqlite3

ROUTES = ("call", "both", "event")


class GoalService:
    """The extracted service, with its own database."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.executescript("""
            CREATE TABLE progress (user TEXT PRIMARY KEY, sessions INTEGER NOT NULL);
            CREATE TABLE counted (entry_id INTEGER PRIMARY KEY);""")
        self.up = True

    # --8<-- [start:idempotent]
    def count_session(self, entry_id: int, user: str) -> bool:
        """Count one session per entry id, whatever path it came by; False if seen."""
        if not self.up:
            raise ConnectionError("goal service unavailable")
        with self.db:
            self.db.execute("BEGIN")
            if self.db.execute("INSERT INTO counted VALUES (?) ON CONFLICT DO NOTHING",
                               (entry_id,)).rowcount == 0:
                return False
            self.db.execute("INSERT INTO progress VALUES (?, 1) ON CONFLICT (user) "
                            "DO UPDATE SET sessions = sessions + 1", (user,))
        return True
    # --8<-- [end:idempotent]

    def sessions(self, user: str) -> int:
        """Sessions counted for ``user``."""
        row = self.db.execute("SELECT sessions FROM progress WHERE user = ?", (user,)).fetchone()
        return row[0] if row else 0


class Monolith:
    """The journal, whose route to the goal service is a feature flag."""

    def __init__(self, goals: GoalService, route: str = "call") -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.executescript("""
            CREATE TABLE entries (id INTEGER PRIMARY KEY, user TEXT NOT NULL, text TEXT NOT NULL);
            CREATE TABLE outbox (id INTEGER PRIMARY KEY, entry_id INTEGER NOT NULL,
                                 user TEXT NOT NULL, published INTEGER NOT NULL DEFAULT 0);""")
        self.goals = goals
        self.route = route

    @property
    def route(self) -> str:
        return self._route

    @route.setter
    def route(self, route: str) -> None:
        if route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
        self._route = route

    # --8<-- [start:save]
    def save_entry(self, user: str, text: str) -> int:
        """Store an entry; count it by call, by event, or both, as the flag says."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            entry_id = self.db.execute("INSERT INTO entries (user, text) VALUES (?, ?)",
                                       (user, text)).lastrowid
            if self.route in ("both", "event"):
                self.db.execute("INSERT INTO outbox (entry_id, user) VALUES (?, ?)",
                                (entry_id, user))
            if self.route in ("call", "both"):
                self.goals.count_session(entry_id, user)  # down -> the save fails
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return entry_id
    # --8<-- [end:save]

    # --8<-- [start:relay]
    def relay(self, crash_after: int | None = None) -> tuple[int, int]:
        """Deliver unpublished events in order; return (delivered, skipped as already counted).

        Stops at the first event the goal service cannot take; it stays for
        the next run. ``crash_after`` kills the relay after delivering the
        event of that entry and before marking it (a test hook).
        """
        delivered = skipped = 0
        for row_id, entry_id, user in self.db.execute(
                "SELECT id, entry_id, user FROM outbox WHERE published = 0 ORDER BY id").fetchall():
            try:
                counted = self.goals.count_session(entry_id, user)
            except ConnectionError:
                break
            delivered, skipped = delivered + 1, skipped + (not counted)
            if entry_id == crash_after:
                raise SystemExit(f"relay killed after delivering entry {entry_id}")
            self.db.execute("UPDATE outbox SET published = 1 WHERE id = ?", (row_id,))
        return delivered, skipped
    # --8<-- [end:relay]

    def entries(self, user: str) -> int:
        """Entries stored for ``user``."""
        return self.db.execute("SELECT count(*) FROM entries WHERE user = ?",
                               (user,)).fetchone()[0]


def main() -> None:
    """Ana writes two entries per step while the route moves from call to event."""
    goals = GoalService()
    journal = Monolith(goals, route="call")
    journal.save_entry("ana", "ran 5 km")
    goals.up = False
    try:
        journal.save_entry("ana", "slept badly")
    except ConnectionError as error:
        print(f"step 0 call  : goal service down -> the save failed: {error}")
    goals.up = True
    journal.save_entry("ana", "slept badly")

    journal.route = "both"
    journal.save_entry("ana", "swam 1 km")
    journal.save_entry("ana", "rest day")
    delivered, skipped = journal.relay()
    print(f"step 1 both  : relay delivered {delivered}, {skipped} already counted by the call")

    journal.route = "event"
    goals.up = False
    journal.save_entry("ana", "ran 6 km")
    journal.save_entry("ana", "ran 7 km")
    print(f"step 2 event : goal service down, 2 entries saved anyway; relay delivered "
          f"{journal.relay()[0]} while it was down")
    goals.up = True
    try:
        journal.relay(crash_after=6)
    except SystemExit as crash:
        print(f"               {crash}")
    delivered, skipped = journal.relay()
    print(f"               restarted relay delivered {delivered}, {skipped} already counted")
    print(f"result       : {journal.entries('ana')} entries stored, "
          f"{goals.sessions('ana')} sessions counted")


if __name__ == "__main__":
    main()
