"""The checkpointed projector: exactly-once effect through crashes, failures and re-delivery."""

from __future__ import annotations

import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.event_projection_projector import (
    GoalBoard,
    MemorySource,
    ProjectionError,
    Projector,
    WritingCalendar,
    main,
)
from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore

ROOT = Path(__file__).resolve().parents[2]


def coaching_history(store: SQLiteEventStore, goals: int = 3, days: int = 10) -> None:
    for g in range(goals):
        store.append(f"goal-{g}", [NewEvent("GoalSet", {"title": f"Goal {g}", "target": days})],
                     expected_version=0)
    for day in range(days):
        entry = {"day": f"2025-03-{day + 1:02}", "words": 100 + day}
        store.append("journal-ana", [NewEvent("EntryWritten", entry)], expected_version=day)
        for g in range(goals):
            if (day + g) % 2 == 0:
                version = len(store.read_stream(f"goal-{g}"))
                store.append(f"goal-{g}", [NewEvent("SessionLogged", {})], expected_version=version)


def tables(db: sqlite3.Connection) -> tuple[list, list]:
    return (db.execute("SELECT * FROM goal_board ORDER BY goal").fetchall(),
            db.execute("SELECT * FROM writing_calendar ORDER BY day").fetchall())


@pytest.fixture
def store(tmp_path):
    with SQLiteEventStore(tmp_path / "events.db") as opened:
        coaching_history(opened)
        yield opened


def reference(store) -> tuple[list, list]:
    db = sqlite3.connect(":memory:")
    Projector(db, store, [GoalBoard(), WritingCalendar()], batch_size=10_000).catch_up()
    return tables(db)


def test_several_read_models_are_built_from_one_store_with_their_own_checkpoints(store):
    db = sqlite3.connect(":memory:")
    projector = Projector(db, store, [GoalBoard(), WritingCalendar()], batch_size=7)
    projector.catch_up()
    board, calendar = tables(db)
    assert board == [("goal-0", "Goal 0", 10, 5, 0), ("goal-1", "Goal 1", 10, 5, 0),
                     ("goal-2", "Goal 2", 10, 5, 0)]
    assert calendar[0] == ("2025-03-01", 1, 100) and len(calendar) == 10
    last = store.last_position()
    assert projector.checkpoint("goal_board") == projector.checkpoint("writing_calendar") == last
    assert projector.catch_up() == 0  # nothing new: nothing applied


class Flaky:
    """Wraps a projection and raises once at each of the given positions."""

    def __init__(self, inner, fail_at: set[int]) -> None:
        self.inner, self.fail_at, self.name = inner, set(fail_at), inner.name

    def create(self, db):
        self.inner.create(db)

    def apply(self, db, event):
        if event.position in self.fail_at:
            self.fail_at.discard(event.position)
            raise OSError("disk hiccup")
        self.inner.apply(db, event)


def test_a_failing_event_rolls_back_its_whole_batch_and_the_checkpoint_with_it(store):
    db = sqlite3.connect(":memory:")
    projector = Projector(db, store, [Flaky(GoalBoard(), {9})], batch_size=5)
    with pytest.raises(ProjectionError, match=r"goal_board failed at position 9 \(journal-ana "
                                              r"EntryWritten\): OSError disk hiccup; batch "
                                              "rolled back, checkpoint stays 5"):
        projector.catch_up()
    assert projector.checkpoint("goal_board") == 5
    sessions = db.execute("SELECT sum(sessions) FROM goal_board").fetchone()[0]
    assert sessions == len([e for e in store.read_all(limit=5) if e.type == "SessionLogged"])
    projector.catch_up()  # the hiccup is over
    board = db.execute("SELECT * FROM goal_board ORDER BY goal").fetchall()
    assert board == reference(store)[0]


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 20), fail_at=st.sets(st.integers(1, 45), max_size=6))
def test_whatever_fails_and_is_retried_the_read_models_equal_a_clean_build(tmp_path_factory,
                                                                           batch, fail_at):
    path = tmp_path_factory.mktemp("p") / "events.db"
    with SQLiteEventStore(path) as source:
        coaching_history(source)
        db = sqlite3.connect(":memory:")
        projector = Projector(db, source, [Flaky(GoalBoard(), fail_at),
                                           Flaky(WritingCalendar(), fail_at)], batch_size=batch)
        for _ in range(len(fail_at) * 2 + 2):
            try:
                projector.catch_up()
                break
            except ProjectionError:
                continue
        assert tables(db) == reference(source)


def test_events_delivered_twice_are_applied_once():
    source = MemorySource()
    source.add("goal-a", "GoalSet", title="A", target=3)
    source.add("goal-a", "SessionLogged")
    db = sqlite3.connect(":memory:")
    projector = Projector(db, source, [GoalBoard()])
    projector.catch_up()
    source.overlap = 2
    source.add("goal-a", "SessionLogged")
    projector.catch_up()
    assert db.execute("SELECT sessions FROM goal_board").fetchone() == (2,)


VICTIM = textwrap.dedent("""
    import sqlite3, sys, time
    from snippets.event_sourcing.event_projection_projector import (
        GoalBoard, Projector, WritingCalendar)
    from snippets.event_sourcing.event_store_sqlite import SQLiteEventStore

    class Stalls(WritingCalendar):
        def apply(self, db, event):
            super().apply(db, event)
            if event.position == int(sys.argv[3]):
                print("mid-batch", flush=True)
                time.sleep(600)  # killed here, inside the transaction

    db = sqlite3.connect(sys.argv[2])
    Projector(db, SQLiteEventStore(sys.argv[1]), [GoalBoard(), Stalls()], batch_size=6).catch_up()
""")


def test_a_projector_killed_mid_batch_resumes_without_loss_or_double_counting(store, tmp_path):
    read_db = tmp_path / "read.db"
    stall_at = store.last_position() - 4
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, str(tmp_path / "events.db"),
                               str(read_db), str(stall_at)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        ready, _, _ = select.select([victim.stdout], [], [], 60)
        assert ready and victim.stdout.readline() == "mid-batch\n"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait(10)
        victim.stdout.close()
    db = sqlite3.connect(read_db)
    projector = Projector(db, store, [GoalBoard(), WritingCalendar()])
    assert projector.checkpoint("goal_board") == store.last_position()  # finished before
    assert projector.checkpoint("writing_calendar") < stall_at  # its batch never committed
    projector.catch_up()
    assert tables(db) == reference(store)


def test_main_shows_both_read_models_the_redelivery_and_the_poison_event(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "caught up      : {'goal_board': 11, 'writing_calendar': 11}"
    assert lines[3] == "calendar       : ('2025-03-03', 2, 250)"
    assert lines[5] == ("re-delivered   : 9-11 sent again with new 12; sessions now "
                        "{'goal-run': 2, 'goal-write': 4}")
    assert lines[6] == ("poison event   : writing_calendar failed at position 13 (journal-ana "
                        "EntryWritten): KeyError 'words'; batch rolled back, checkpoint stays 12")
    assert lines[7] == "checkpoints    : {'goal_board': 14, 'writing_calendar': 12}"


class Reordering(MemorySource):
    """A source that hands out positions in the given order: a broken transport."""

    def __init__(self, order: list[int]) -> None:
        super().__init__()
        self.order = order

    def read_all(self, *, after: int = 0, limit: int = 1000) -> list:
        by_position = {e.position: e for e in self.events}
        return [by_position[p] for p in self.order if p > after][:limit]


def test_an_event_delivered_after_a_later_one_is_refused_not_silently_skipped():
    source = Reordering([1, 3, 2, 4])
    source.add("goal-a", "GoalSet", title="A", target=5)
    for _ in range(3):
        source.add("goal-a", "SessionLogged")
    db = sqlite3.connect(":memory:")
    projector = Projector(db, source, [GoalBoard()], batch_size=10)
    with pytest.raises(ProjectionError, match=r"^goal_board: position 2 arrived after position 3: "
                                              r"the source is out of order; batch rolled back, "
                                              r"checkpoint stays 0$"):
        projector.catch_up()
    assert projector.checkpoint("goal_board") == 0
    assert db.execute("SELECT count(*) FROM goal_board").fetchone() == (0,)
    source.order = [1, 2, 3, 4]  # the transport is fixed: nothing was lost
    assert projector.catch_up() == 4
    assert db.execute("SELECT sessions FROM goal_board").fetchone() == (3,)


def test_a_duplicate_inside_one_batch_is_applied_once():
    source = Reordering([1, 2, 2, 3, 3, 3])
    source.add("goal-a", "GoalSet", title="A", target=5)
    source.add("goal-a", "SessionLogged")
    source.add("goal-a", "SessionLogged")
    db = sqlite3.connect(":memory:")
    projector = Projector(db, source, [GoalBoard()])
    assert projector.catch_up() == 3
    assert db.execute("SELECT sessions FROM goal_board").fetchone() == (2,)
    assert projector.checkpoint("goal_board") == 3


RIVAL = textwrap.dedent("""
    import sqlite3, sys
    from snippets.event_sourcing.event_projection_projector import (
        GoalBoard, Projector, WritingCalendar)
    from snippets.event_sourcing.event_store_sqlite import SQLiteEventStore

    db = sqlite3.connect(sys.argv[2], timeout=60)
    print(Projector(db, SQLiteEventStore(sys.argv[1]), [GoalBoard(), WritingCalendar()],
                    batch_size=3).catch_up(), flush=True)
""")


def test_four_projector_processes_on_one_read_database_apply_every_event_once(tmp_path):
    with SQLiteEventStore(tmp_path / "events.db") as source:
        coaching_history(source, goals=6, days=40)
        read_db = tmp_path / "read.db"
        sqlite3.connect(read_db).execute("PRAGMA journal_mode=WAL").fetchone()
        rivals = [subprocess.Popen([sys.executable, "-c", RIVAL, str(tmp_path / "events.db"),
                                    str(read_db)], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outputs = [rival.communicate(timeout=300) for rival in rivals]
        assert [r.returncode for r in rivals] == [0] * 4, [err[-300:] for _, err in outputs]
        last = source.last_position()
        assert last == 166
        # between them they applied each event once per read model, whoever did it
        assert sum(int(out) for out, _ in outputs) == 2 * last
        db = sqlite3.connect(read_db)
        projector = Projector(db, source, [GoalBoard(), WritingCalendar()])
        assert projector.checkpoint("goal_board") == projector.checkpoint("writing_calendar") \
            == last
        assert tables(db) == reference(source)
