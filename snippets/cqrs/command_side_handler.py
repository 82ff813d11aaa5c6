"""The command side of CQRS: commands as intent, validated, decided, appended once.

A command asks for a change and may be refused. Its name is an imperative
(``SetGoal``, ``LogSession``) and it carries a ``command_id`` that the client
chooses once and sends again on every retry. The handler:

1. validates the command's shape (:class:`InvalidCommandError`, nothing loaded);
2. reads, in one snapshot, whether this ``command_id`` was already handled
   (then returns the stored result) and the goal's events;
3. lets the goal decide (:class:`CommandRejectedError` with a stable
   ``reason`` code);
4. appends the new events expecting the version it loaded, storing the
   ``command_id`` in the same transaction (:class:`ConcurrencyError` if
   another command got there first; nothing is appended).

The result carries the global position of the last event: the token a
client hands to the query side to read its own write.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


# --8<-- [start:commands]
@dataclass(frozen=True, slots=True)
class SetGoal:
    """Start a goal of ``target`` sessions, for ``user``."""

    command_id: str
    goal_id: str
    user: str
    title: str
    target: int


@dataclass(frozen=True, slots=True)
class LogSession:
    """Count journal entry ``entry_id``, written on ``day``, as a session of the goal."""

    command_id: str
    goal_id: str
    entry_id: str
    day: str


Command = SetGoal | LogSession
# --8<-- [end:commands]


# --8<-- [start:errors]
class InvalidCommandError(ValueError):
    """The command is malformed: refused before anything was loaded or stored."""

    def __init__(self, command: Command, problems: list[str]) -> None:
        super().__init__(f"{type(command).__name__} {command.command_id!r} is invalid: "
                         + "; ".join(problems))
        self.problems = problems


class CommandRejectedError(Exception):
    """The goal refused the command; ``reason`` is a stable code a client can act on."""

    def __init__(self, command_id: str, reason: str, message: str) -> None:
        super().__init__(f"{command_id} rejected ({reason}): {message}")
        self.command_id, self.reason = command_id, reason


class ConcurrencyError(Exception):
    """Another command changed the stream after this one loaded it; nothing was appended."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r} was loaded at version {expected} but is now at "
                         f"version {actual}; nothing was appended, retry the command")
        self.stream, self.expected, self.actual = stream, expected, actual


class CommandIdReusedError(Exception):
    """A ``command_id`` came back with different content: refused, never guessed."""
# --8<-- [end:errors]


def validate(command: Command) -> None:
    """Check the command's shape; raise one error that lists every problem."""
    if not isinstance(command, SetGoal | LogSession):
        raise TypeError(f"expected a command (SetGoal, LogSession), not {type(command).__name__}")
    problems = []
    ids = ["command_id", "goal_id", "user" if isinstance(command, SetGoal) else "entry_id"]
    for name in ids:
        value = getattr(command, name)
        if not isinstance(value, str) or not _ID.fullmatch(value):
            problems.append(f"{name}: {value!r} is not an id (a-z, 0-9 and -, at most 64)")
    if isinstance(command, SetGoal):
        if not isinstance(command.title, str) or not 1 <= len(command.title.strip()) <= 80:
            problems.append("title: must be 1 to 80 characters")
        target = command.target
        if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= 365:
            problems.append(f"target: must be a whole number from 1 to 365, not {target!r}")
    else:
        try:
            date.fromisoformat(command.day if len(command.day) == 10 else "")
        except (TypeError, ValueError):
            problems.append(f"day: {command.day!r} is not a date like 2025-03-04")
    if problems:
        raise InvalidCommandError(command, problems)


# --8<-- [start:decide]
@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal's state, folded from its events; ``version`` counts them."""

    goal_id: str
    version: int = 0
    user: str = ""
    title: str = ""
    target: int = 0
    entries: tuple[str, ...] = ()
    achieved: bool = False

    def evolve(self, type_: str, data: dict[str, Any]) -> Goal:
        """The state after one more event."""
        goal = replace(self, version=self.version + 1)
        match type_:
            case "GoalSet":
                return replace(goal, user=data["user"], title=data["title"], target=data["target"])
            case "SessionLogged":
                return replace(goal, entries=(*goal.entries, data["entry_id"]))
            case "GoalAchieved":
                return replace(goal, achieved=True)
        raise ValueError(f"goal {self.goal_id!r}: unknown event type {type_!r}")


def decide(goal: Goal, command: Command) -> list[NewEvent]:
    """What the command means for the goal as it is now: new events, or a refusal."""
    def reject(reason: str, message: str) -> CommandRejectedError:
        return CommandRejectedError(command.command_id, reason, message)

    match command:
        case SetGoal(goal_id=goal_id, user=user, title=title, target=target):
            if goal.version:
                raise reject("goal_already_set", f"goal {goal_id!r} is already {goal.title!r}")
            return [NewEvent("GoalSet", {"user": user, "goal_id": goal_id,
                                         "title": title.strip(), "target": target})]
        case LogSession(goal_id=goal_id, entry_id=entry_id, day=day):
            if not goal.version:
                raise reject("goal_not_set", f"there is no goal {goal_id!r}")
            if goal.achieved:
                raise reject("goal_achieved", f"goal {goal_id!r} was achieved after "
                             f"{goal.target} sessions and takes no more")
            if entry_id in goal.entries:
                raise reject("entry_already_counted",
                             f"entry {entry_id!r} already counts for goal {goal_id!r}")
            data = {"user": goal.user, "goal_id": goal_id, "entry_id": entry_id, "day": day}
            events = [NewEvent("SessionLogged", data)]
            if len(goal.entries) + 1 == goal.target:
                events.append(NewEvent("GoalAchieved", {"user": goal.user, "goal_id": goal_id,
                                                        "day": day, "sessions": goal.target}))
            return events
    raise TypeError(f"a goal cannot decide {type(command).__name__}")
# --8<-- [end:decide]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did. ``position`` is the read-your-writes token."""

    command_id: str
    stream: str
    version: int
    position: int
    events: int
    duplicate: bool = False


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
    version INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (stream, version));
CREATE TABLE IF NOT EXISTS commands (command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    stream TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
    events INTEGER NOT NULL);
"""


# --8<-- [start:store]
class GoalStore:
    """Goal events and handled command ids, in one SQLite file (WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def load(self, goal_id: str) -> Goal:
        """Rehydrate a goal by folding its stream."""
        with self._lock:
            return self._fold(goal_id)

    def load_for(self, command_id: str, fingerprint: str,
                 goal_id: str) -> tuple[CommandResult | None, Goal]:
        """The command's stored result if it was handled, and the goal: one snapshot.

        Reading both at once matters: a goal loaded after a concurrent retry of
        the same command committed would already hold its effect, and the rules
        would refuse the command as a duplicate instead of returning its result.
        """
        with self._lock:
            self._db.execute("BEGIN")  # a read transaction: one consistent snapshot
            try:
                return self._handled(command_id, fingerprint), self._fold(goal_id)
            finally:
                self._db.execute("COMMIT")

    def append(self, command_id: str, fingerprint: str, stream: str,
               events: list[NewEvent], expected_version: int) -> CommandResult:
        """Append the events and record the command id, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one writer at a time, positions in order
            try:
                if done := self._handled(command_id, fingerprint):  # a retry won the race
                    self._db.execute("COMMIT")
                    return done
                (actual,) = self._db.execute("SELECT count(*) FROM events WHERE stream = ?",
                                             (stream,)).fetchone()
                if actual != expected_version:
                    raise ConcurrencyError(stream, expected_version, actual)
                (head,) = self._db.execute("SELECT coalesce(max(position), 0) FROM events"
                                           ).fetchone()
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", [
                    (head + i, stream, expected_version + i, e.type, json.dumps(e.data))
                    for i, e in enumerate(events, 1)])
                result = CommandResult(command_id, stream, expected_version + len(events),
                                       head + len(events), len(events))
                self._db.execute("INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)",
                                 (command_id, fingerprint, stream, result.version,
                                  result.position, result.events))
                self._db.execute("COMMIT")
                return result
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def events(self) -> list[tuple[int, str, int, str, dict[str, Any]]]:
        """Every event: (position, stream, version, type, data)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events ORDER BY position").fetchall()
        return [(p, s, v, t, json.loads(d)) for p, s, v, t, d in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _fold(self, goal_id: str) -> Goal:
        rows = self._db.execute("SELECT type, data FROM events WHERE stream = ? "
                                "ORDER BY version", (f"goal-{goal_id}",)).fetchall()
        goal = Goal(goal_id)
        for type_, data in rows:
            goal = goal.evolve(type_, json.loads(data))
        return goal

    def _handled(self, command_id: str, fingerprint: str) -> CommandResult | None:
        row = self._db.execute("SELECT * FROM commands WHERE command_id = ?",
                               (command_id,)).fetchone()
        if row is None:
            return None
        if row[1] != fingerprint:
            raise CommandIdReusedError(f"command id {command_id!r} was already used for a "
                                       "different command; nothing was appended")
        return CommandResult(command_id, *row[2:], duplicate=True)
# --8<-- [end:store]


# --8<-- [start:handler]
def fingerprint(command: Command) -> str:
    """A digest of the command's type and content, to spot a reused command id."""
    text = json.dumps([type(command).__name__, asdict(command)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class CommandHandler:
    """Validate, deduplicate, load, decide, append.

    Args:
        store: where the goals' events and handled command ids live.
        retries: how many times to reload and decide again after a
            :class:`ConcurrencyError` (0: report it to the caller).
    """

    def __init__(self, store: GoalStore, *, retries: int = 0) -> None:
        self.store, self.retries = store, retries

    def handle(self, command: Command) -> CommandResult:
        validate(command)
        digest = fingerprint(command)
        for attempt in range(self.retries + 1):
            done, goal = self.store.load_for(command.command_id, digest, command.goal_id)
            if done:
                return done  # a retry of a handled command: same answer, nothing new
            events = decide(goal, command)
            try:
                return self.store.append(command.command_id, digest, f"goal-{goal.goal_id}",
                                         events, expected_version=goal.version)
            except ConcurrencyError:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
# --8<-- [end:handler]


# --8<-- [start:demo]
def main() -> None:
    """Commands accepted, refused, retried, and racing for the same goal."""
    def show(label: str, result: CommandResult) -> None:
        count = f"{result.events} event{'s' if result.events > 1 else ''}"
        note = "duplicate, nothing appended" if result.duplicate else count
        print(f"{label:<15}: {result.command_id} -> {result.stream} v{result.version}, "
              f"position {result.position} ({note})")

    with tempfile.TemporaryDirectory() as tmp:
        store = GoalStore(Path(tmp) / "goals.db")
        handler = CommandHandler(store)
        show("set goal", handler.handle(SetGoal("c-1", "run", "ana", "Run 5 km", 3)))
        show("log session", handler.handle(LogSession("c-2", "run", "e1", "2025-03-03")))
        show("c-2 again", handler.handle(LogSession("c-2", "run", "e1", "2025-03-03")))
        for label, command in [
            ("invalid", SetGoal("c-3", "walk", "ana", " ", 0)),
            ("refused", LogSession("c-4", "run", "e1", "2025-03-04")),
            ("refused", LogSession("c-5", "swim", "e2", "2025-03-04")),
            ("id reused", LogSession("c-2", "run", "e9", "2025-03-04")),
        ]:
            try:
                handler.handle(command)
            except (InvalidCommandError, CommandRejectedError, CommandIdReusedError) as error:
                print(f"{label:<15}: {error}")

        # Agent B loads the goal, then agent A's command commits first.
        stale = store.load("run")
        show("agent A", handler.handle(LogSession("c-6", "run", "e2", "2025-03-04")))
        late = LogSession("c-7", "run", "e3", "2025-03-05")
        try:
            store.append(late.command_id, fingerprint(late), "goal-run", decide(stale, late),
                         expected_version=stale.version)
        except ConcurrencyError as error:
            print(f"{'agent B':<15}: {error}")
        show("B retries", CommandHandler(store, retries=3).handle(late))
        for position, stream, version, type_, data in store.events():
            print(f"  {position}  {stream} v{version}  {type_:<13} {data}")
        store.close()


if __name__ == "__main__":
    main()
# --8<-- [end:demo]
