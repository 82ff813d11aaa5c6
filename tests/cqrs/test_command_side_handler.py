"""The command side: validation, domain rejections, idempotency by command id, and
concurrent commands on one goal from threads and processes."""

from __future__ import annotations

import multiprocessing
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.cqrs.command_side_handler import (
    CommandHandler,
    CommandIdReusedError,
    CommandRejectedError,
    ConcurrencyError,
    GoalStore,
    InvalidCommandError,
    LogSession,
    SetGoal,
    decide,
    fingerprint,
    main,
)
from tests.cqrs import workers


@pytest.fixture
def store(tmp_path: Path):
    opened = GoalStore(tmp_path / "goals.db")
    yield opened
    opened.close()


@pytest.fixture
def handler(store: GoalStore) -> CommandHandler:
    handler = CommandHandler(store)
    handler.handle(SetGoal("c-set", "run", "ana", "Run 5 km", 3))
    return handler


def session(command_id: str, entry: str, day: str = "2025-03-04", goal: str = "run"):
    return LogSession(command_id, goal, entry, day)


# ------------------------------------------------------------------ idempotency
def test_a_command_applied_twice_acts_once(handler, store):
    first = handler.handle(session("c-1", "e1"))
    again = handler.handle(session("c-1", "e1"))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.stream, again.version, again.position, again.events) == (
        first.stream, first.version, first.position, first.events)
    assert [e[3] for e in store.events()] == ["GoalSet", "SessionLogged"]


def test_a_retry_gets_the_first_answer_and_not_a_misleading_rejection(handler):
    handler.handle(session("c-1", "e1"))
    assert handler.handle(session("c-1", "e1")).duplicate  # the client's retry
    with pytest.raises(CommandRejectedError) as error:  # a *new* command for the same entry
        handler.handle(session("c-2", "e1"))
    assert error.value.reason == "entry_already_counted"


def test_the_same_command_sent_by_eight_threads_at_once_acts_once(handler, store):
    barrier, results = threading.Barrier(8), []

    def send() -> None:
        barrier.wait(10)
        results.append(handler.handle(session("c-1", "e1")))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert {r.position for r in results} == {2}
    assert len(store.events()) == 2


class RetryLandsMidway(GoalStore):
    """Just before the command's snapshot, its twin (the same command, sent again)
    commits: the snapshot shows it handled, never its effect without its record."""

    def __init__(self, path, other: CommandHandler) -> None:
        super().__init__(path)
        self.other, self.fired = other, False

    def load_for(self, command_id: str, fingerprint: str, goal_id: str):
        if not self.fired:
            self.fired = True
            self.other.handle(session("c-1", "e1"))  # the twin commits first
        return super().load_for(command_id, fingerprint, goal_id)


def test_a_twin_that_commits_while_the_command_loads_makes_it_a_duplicate_not_a_refusal(
        handler, tmp_path):
    store = RetryLandsMidway(tmp_path / "goals.db", handler)
    result = CommandHandler(store).handle(session("c-1", "e1"))
    assert result.duplicate and result.position == 2
    assert len(store.events()) == 2


def test_a_command_id_reused_for_another_command_is_refused_and_stores_nothing(handler, store):
    handler.handle(session("c-1", "e1"))
    before = store.events()
    with pytest.raises(CommandIdReusedError, match="command id 'c-1' was already used for a "
                                                   "different command; nothing was appended"):
        handler.handle(session("c-1", "e2"))
    with pytest.raises(CommandIdReusedError):
        handler.handle(SetGoal("c-1", "walk", "ana", "Walk", 5))
    assert store.events() == before


def test_a_rejected_command_is_not_remembered_so_it_can_succeed_later(store):
    handler = CommandHandler(store)
    with pytest.raises(CommandRejectedError, match=r"c-1 rejected \(goal_not_set\): there is "
                                                   "no goal 'run'"):
        handler.handle(session("c-1", "e1"))
    handler.handle(SetGoal("c-set", "run", "ana", "Run 5 km", 3))
    assert not handler.handle(session("c-1", "e1")).duplicate


# ------------------------------------------------------------------ validation and rules
@pytest.mark.parametrize("command, problem", [
    (SetGoal("c-1", "walk", "ana", "", 3), "title: must be 1 to 80 characters"),
    (SetGoal("c-1", "walk", "ana", "x" * 10_000, 3), "title: must be 1 to 80 characters"),
    (SetGoal("c-1", "walk", "ana", None, 3), "title: must be 1 to 80 characters"),
    (SetGoal("c-1", "walk", "ana", "Walk", 0), "target: must be a whole number from 1 to 365"),
    (SetGoal("c-1", "walk", "ana", "Walk", True), "not True"),
    (SetGoal("c-1", "walk", "ana", "Walk", "3"), "not '3'"),
    (SetGoal("c-1", "walk", "ana", "Walk", 3.0), "not 3.0"),
    (SetGoal("c-1", "walk", "Ana", "Walk", 3), "user: 'Ana' is not an id"),
    (SetGoal("c 1", "walk", "ana", "Walk", 3), "command_id: 'c 1' is not an id"),
    (SetGoal("c-1", "'; DROP TABLE events; --", "ana", "Walk", 3), "goal_id: "),
    (SetGoal("c-1", "x" * 65, "ana", "Walk", 3), "goal_id: "),
    (LogSession("c-1", "run", "e1", "2025-02-30"), "day: '2025-02-30' is not a date"),
    (LogSession("c-1", "run", "e1", "tomorrow"), "day: 'tomorrow' is not a date"),
    (LogSession("c-1", "run", "e1", 20250304), "day: 20250304 is not a date"),
    (LogSession("c-1", "run", "e1", "2025-3-4"), "day: '2025-3-4' is not a date"),
    (LogSession("c-1", "run", None, "2025-03-04"), "entry_id: None is not an id"),
    (LogSession("c-1", "run", "é1", "2025-03-04"), "entry_id: 'é1' is not an id"),
])
def test_a_malformed_command_is_refused_naming_the_problem_and_nothing_is_stored(
        handler, store, command, problem):
    before = store.events()
    with pytest.raises(InvalidCommandError, match=f"^{type(command).__name__} .* is invalid: "
                                                  ".*" + problem.replace("(", r"\(")[:30]):
        handler.handle(command)
    assert store.events() == before


def test_every_problem_of_a_command_is_named_at_once(handler):
    with pytest.raises(InvalidCommandError) as error:
        handler.handle(SetGoal("c-1", "walk", "ana", " ", 0))
    assert error.value.problems == ["title: must be 1 to 80 characters",
                                    "target: must be a whole number from 1 to 365, not 0"]


def test_something_that_is_not_a_command_is_a_type_error(handler):
    with pytest.raises(TypeError, match="expected a command .*, not dict"):
        handler.handle({"command_id": "c-1"})


@pytest.mark.parametrize("command, reason, message", [
    (SetGoal("c-9", "run", "ana", "Run 10 km", 3), "goal_already_set",
     "goal 'run' is already 'Run 5 km'"),
    (LogSession("c-9", "swim", "e1", "2025-03-04"), "goal_not_set", "there is no goal 'swim'"),
    (LogSession("c-9", "run", "e1", "2025-03-05"), "entry_already_counted",
     "entry 'e1' already counts for goal 'run'"),
])
def test_a_command_the_goal_refuses_gets_a_reason_code_and_stores_nothing(
        handler, store, command, reason, message):
    handler.handle(session("c-1", "e1"))
    before = store.events()
    with pytest.raises(CommandRejectedError) as error:
        handler.handle(command)
    assert (error.value.reason, error.value.command_id) == (reason, "c-9")
    assert str(error.value) == f"c-9 rejected ({reason}): {message}"
    assert store.events() == before


def test_the_session_that_reaches_the_target_also_records_the_achievement(handler, store):
    for i in (1, 2):
        handler.handle(session(f"c-{i}", f"e{i}"))
    result = handler.handle(session("c-3", "e3", "2025-03-05"))
    assert (result.version, result.events) == (5, 2)
    assert store.events()[-1] == (5, "goal-run", 5, "GoalAchieved", {
        "user": "ana", "goal_id": "run", "day": "2025-03-05", "sessions": 3})
    with pytest.raises(CommandRejectedError) as error:
        handler.handle(session("c-4", "e4"))
    assert error.value.reason == "goal_achieved"


def test_the_events_and_the_command_record_are_stored_together_or_not_at_all(handler, store,
                                                                              tmp_path):
    with sqlite3.connect(tmp_path / "goals.db") as db:
        db.execute("CREATE TRIGGER full BEFORE INSERT ON commands "
                   "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    before = store.events()
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        handler.handle(session("c-1", "e1"))
    assert store.events() == before
    with sqlite3.connect(tmp_path / "goals.db") as db:
        db.execute("DROP TRIGGER full")
    assert not handler.handle(session("c-1", "e1")).duplicate  # the retry acts, once


@pytest.mark.parametrize("raise_", ["ABORT", "ROLLBACK"])
def test_a_failure_inside_the_database_is_reported_as_itself_and_stores_nothing(
        handler, store, tmp_path, raise_):
    with sqlite3.connect(tmp_path / "goals.db") as db:  # ROLLBACK: SQLite ends the transaction
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON events "
                   f"BEGIN SELECT RAISE({raise_}, 'refused by trigger'); END")
    before = store.events()
    with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
        handler.handle(session("c-1", "e1"))
    assert store.events() == before


def test_two_appends_of_the_same_decided_command_store_it_once(handler, store):
    """Two retries that both passed the first check: the second finds the first's record."""
    command = session("c-1", "e1")
    goal = store.load("run")
    first, second = (store.append("c-1", fingerprint(command), "goal-run",
                                  decide(goal, command), expected_version=goal.version)
                     for _ in range(2))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.position == second.position == 2
    assert len(store.events()) == 2


def test_a_goal_cannot_decide_something_that_is_not_a_command(store):
    with pytest.raises(TypeError, match="a goal cannot decide str"):
        decide(store.load("run"), "SetGoal")


def test_an_unknown_stored_event_type_is_reported_with_the_goal(handler, tmp_path, store):
    with sqlite3.connect(tmp_path / "goals.db") as db:
        db.execute("INSERT INTO events VALUES (2, 'goal-run', 2, 'GoalRenamed', '{}')")
    with pytest.raises(ValueError, match="goal 'run': unknown event type 'GoalRenamed'"):
        handler.handle(session("c-1", "e1"))


# ------------------------------------------------------------------ concurrency
class RacingStore(GoalStore):
    """Every load waits for the other racer's load: both decide on the same version."""

    barrier: threading.Barrier

    def load_for(self, command_id: str, fingerprint: str, goal_id: str):
        loaded = super().load_for(command_id, fingerprint, goal_id)
        self.barrier.wait(10)
        return loaded


def test_concurrent_commands_on_one_goal_one_wins_the_other_gets_a_concurrency_error(tmp_path):
    store = RacingStore(tmp_path / "goals.db")
    store.barrier = threading.Barrier(2)
    CommandHandler(GoalStore(tmp_path / "goals.db")).handle(SetGoal("c-set", "run", "ana",
                                                                    "Run", 365))
    handler = CommandHandler(store)
    for round_ in range(10):
        outcomes: dict[str, object] = {}

        def send(name: str, round_: int = round_, outcomes: dict = outcomes) -> None:
            try:
                outcomes[name] = handler.handle(session(f"c-{name}-{round_}", f"e-{name}-{round_}"))
            except ConcurrencyError as error:
                outcomes[name] = error

        threads = [threading.Thread(target=send, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        errors = [o for o in outcomes.values() if isinstance(o, ConcurrencyError)]
        assert len(errors) == 1, outcomes
        assert (errors[0].expected, errors[0].actual) == (1 + 2 * round_, 2 + 2 * round_)
        assert "nothing was appended, retry the command" in str(errors[0])
        loser = next(name for name, o in outcomes.items() if o is errors[0])
        store.barrier = threading.Barrier(1)  # the retry races no one
        retried = CommandHandler(store, retries=1).handle(
            session(f"c-{loser}-{round_}", f"e-{loser}-{round_}"))
        assert not retried.duplicate
        store.barrier = threading.Barrier(2)
    sessions = [e[4]["entry_id"] for e in store.events() if e[3] == "SessionLogged"]
    assert sorted(sessions) == sorted(f"e-{n}-{r}" for n in "ab" for r in range(10))
    assert [e[2] for e in store.events()] == list(range(1, 22))


def seeded_store(path: Path) -> GoalStore:
    store = GoalStore(path)
    CommandHandler(store).handle(SetGoal("c-set", workers.GOAL, "ana", "Write", 365))
    return store


def test_processes_racing_for_the_same_version_let_exactly_one_win_each_round(tmp_path):
    store = seeded_store(tmp_path / "goals.db")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=workers.race_rounds,
                             args=(str(tmp_path / "goals.db"), barrier, results, w, 8))
                 for w in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(4 * 8)]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    by_round = defaultdict(Counter)
    for round_, _worker, outcome, version in outcomes:
        by_round[round_][outcome] += 1
        assert version == round_ + 2  # the winner's new version, which every loser is told
    assert all(counts == {"won": 1, "lost": 3} for counts in by_round.values())
    assert [e[2] for e in store.events()] == list(range(1, 10))


def test_processes_that_retry_every_conflict_lose_and_duplicate_nothing(tmp_path):
    store = seeded_store(tmp_path / "goals.db")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=workers.log_sessions,
                             args=(str(tmp_path / "goals.db"), barrier, results, w, 15))
                 for w in range(4)]
    for process in processes:
        process.start()
    done = sorted(results.get(timeout=120) for _ in range(4))
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert done == [0, 1, 2, 3]
    events = store.events()
    assert [e[2] for e in events] == list(range(1, 62))  # versions 1..61, no gap, no repeat
    entries = [e[4]["entry_id"] for e in events if e[3] == "SessionLogged"]
    assert sorted(entries) == sorted(f"e-{w}-{i}" for w in range(4) for i in range(15))
    for w in range(4):  # each writer's sessions in the order it sent them
        mine = [e for e in entries if e.startswith(f"e-{w}-")]
        assert mine == [f"e-{w}-{i}" for i in range(15)]


class FirstLoadsRace(GoalStore):
    """The first two loads wait for each other; later loads (the retries) do not."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.barrier, self.loads, self.count_lock = threading.Barrier(2), 0, threading.Lock()

    def load_for(self, command_id: str, fingerprint: str, goal_id: str):
        loaded = super().load_for(command_id, fingerprint, goal_id)
        with self.count_lock:
            self.loads += 1
            racing = self.loads <= 2
        if racing:
            self.barrier.wait(10)
        return loaded


def test_with_retries_both_racing_commands_succeed_on_fresh_state(tmp_path):
    CommandHandler(GoalStore(tmp_path / "goals.db")).handle(SetGoal("c-set", "run", "ana",
                                                                    "Run", 365))
    store = FirstLoadsRace(tmp_path / "goals.db")
    handler, results = CommandHandler(store, retries=1), []
    threads = [threading.Thread(target=lambda n=n: results.append(
        handler.handle(session(f"c-{n}", f"e-{n}")))) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert store.loads == 3  # both raced on version 1; the loser loaded once more
    assert sorted(r.version for r in results) == [2, 3]
    assert [e[2] for e in store.events()] == [1, 2, 3]


# ------------------------------------------------------------------ a model
GOALS = ["run", "read"]
commands = st.one_of(
    st.builds(SetGoal, command_id=st.sampled_from(["s1", "s2", "s3"]),
              goal_id=st.sampled_from(GOALS), user=st.just("ana"), title=st.just("Goal"),
              target=st.integers(1, 3)),
    st.builds(LogSession, command_id=st.sampled_from([f"l{i}" for i in range(6)]),
              goal_id=st.sampled_from(GOALS), entry_id=st.sampled_from(["e1", "e2", "e3", "e4"]),
              day=st.just("2025-03-04")),
)


@settings(max_examples=40, deadline=None)
@given(sequence=st.lists(commands, max_size=25), retries=st.lists(st.integers(0, 24), max_size=8))
def test_any_mix_of_commands_and_retries_behaves_like_a_simple_model(sequence, retries):
    for index in sorted(retries, reverse=True):  # a retry re-sends an earlier command as it was
        if index < len(sequence):
            sequence.insert(index + 1, sequence[index])
    store = GoalStore(":memory:")
    handler = CommandHandler(store)
    goals: dict[str, dict] = {}
    done: dict[str, tuple[object, tuple]] = {}
    expected_events = []
    for command in sequence:
        if command.command_id in done:
            first, first_result = done[command.command_id]
            if first != command:
                with pytest.raises(CommandIdReusedError):
                    handler.handle(command)
                continue
            result = handler.handle(command)
            assert result.duplicate and (result.version, result.position) == first_result
            continue
        goal = goals.get(command.goal_id)
        if isinstance(command, SetGoal):
            reason = "goal_already_set" if goal else None
        elif goal is None:
            reason = "goal_not_set"
        elif len(goal["entries"]) == goal["target"]:
            reason = "goal_achieved"
        else:
            reason = "entry_already_counted" if command.entry_id in goal["entries"] else None
        if reason:
            with pytest.raises(CommandRejectedError) as error:
                handler.handle(command)
            assert error.value.reason == reason
            continue
        result = handler.handle(command)
        if isinstance(command, SetGoal):
            goals[command.goal_id] = {"target": command.target, "entries": []}
            expected_events.append((command.goal_id, "GoalSet"))
        else:
            goal["entries"].append(command.entry_id)
            expected_events.append((command.goal_id, "SessionLogged"))
            if len(goal["entries"]) == goal["target"]:
                expected_events.append((command.goal_id, "GoalAchieved"))
        done[command.command_id] = (command, (result.version, result.position))
    assert [(s.removeprefix("goal-"), t) for _, s, _, t, _ in store.events()] == expected_events
    store.close()


def test_main_shows_acceptance_rejection_retry_and_the_race(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "set goal       : c-1 -> goal-run v1, position 1 (1 event)",
        "log session    : c-2 -> goal-run v2, position 2 (1 event)",
        "c-2 again      : c-2 -> goal-run v2, position 2 (duplicate, nothing appended)"]
    assert lines[3].startswith("invalid        : SetGoal 'c-3' is invalid: title:")
    assert lines[4] == ("refused        : c-4 rejected (entry_already_counted): entry 'e1' "
                        "already counts for goal 'run'")
    assert lines[8] == ("agent B        : stream 'goal-run' was loaded at version 2 but is now "
                        "at version 3; nothing was appended, retry the command")
    assert lines[9] == "B retries      : c-7 -> goal-run v5, position 5 (2 events)"
    assert lines[-1].startswith("  5  goal-run v5  GoalAchieved")


# ------------------------------------------------------------------ a handler killed mid-command
KILLED_HANDLER = """
import sys
from snippets.cqrs.command_side_handler import CommandHandler, GoalStore, LogSession, SetGoal
handler = CommandHandler(GoalStore(sys.argv[1]))
handler.handle(SetGoal("c-set", "run", "ana", "Run every day", 365))
for i in range(int(sys.argv[2]), 300):
    result = handler.handle(LogSession(f"c-{i}", "run", f"e-{i}", "2025-03-04"))
    print(i, result.duplicate, flush=True)  # the reply; a kill may come before it
"""


def holds_the_write_lock(path: Path) -> bool:
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    finally:
        probe.close()


def test_a_handler_killed_mid_command_leaves_each_command_whole_or_absent_and_retries_act_once(
        tmp_path):
    path = tmp_path / "goals.db"
    GoalStore(path).close()  # WAL mode and tables exist before the victims start
    replied: set[int] = set()
    for _ in range(3):  # three hard kills, each while a command's transaction is open
        start = max(replied, default=-1) + 1
        victim = subprocess.Popen([sys.executable, "-c", KILLED_HANDLER, str(path), str(start)],
                                  cwd=Path(__file__).resolve().parents[2],
                                  stdout=subprocess.PIPE, text=True)
        try:
            seen_before = len(replied)
            deadline = time.monotonic() + 60
            while len(replied) < seen_before + 5:  # let it reply a few times first
                ready, _, _ = select.select([victim.stdout], [], [], 60)
                assert ready, "the handler process printed nothing for 60 s"
                replied.add(int(victim.stdout.readline().split()[0]))
            while not holds_the_write_lock(path):
                assert time.monotonic() < deadline, "never caught the handler mid-append"
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(10) == -signal.SIGKILL
        finally:
            victim.kill()
            victim.wait(10)
            replied |= {int(line.split()[0]) for line in victim.stdout.read().splitlines()}
            victim.stdout.close()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = GoalStore(path)
    stored = store.events()
    sessions = [data["entry_id"] for _, _, _, type_, data in stored if type_ == "SessionLogged"]
    assert [v for _, _, v, _, _ in stored] == list(range(1, len(stored) + 1))
    assert sessions == [f"e-{i}" for i in range(len(sessions))]  # a prefix, nothing half
    assert {f"e-{i}" for i in replied} <= set(sessions)  # every reply was a stored command
    # The client never saw replies for the rest: it sends every command again.
    handler = CommandHandler(store)
    total = len(sessions) + 10
    results = [handler.handle(session(f"c-{i}", f"e-{i}")) for i in range(total)]
    assert [r.duplicate for r in results] == [i < len(sessions) for i in range(total)]
    assert [r.version for r in results] == list(range(2, total + 2))
    final = [data["entry_id"] for *_, type_, data in store.events() if type_ == "SessionLogged"]
    assert final == [f"e-{i}" for i in range(total)]  # each command acted exactly once
    store.close()
