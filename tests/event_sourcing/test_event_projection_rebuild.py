"""Rebuild-and-swap: readers keep a complete read model while a new version is built."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from snippets.event_sourcing.event_projection_rebuild import (
    GoalBoardV1,
    GoalBoardV2,
    MemorySource,
    ReadModel,
    main,
)
from snippets.event_sourcing.event_store_sqlite import NewEvent, SQLiteEventStore

GOALS = 3


def history(source: MemorySource, sessions: int) -> None:
    for g in range(GOALS):
        source.add(f"goal-{g}", "GoalSet", title=f"Goal {g}", target=sessions)
    for i in range(sessions * GOALS):
        source.add(f"goal-{i % GOALS}", "SessionLogged")


def test_readers_never_see_a_missing_or_partial_board_during_rebuild_and_swap(tmp_path):
    source = MemorySource()
    history(source, 200)
    path = tmp_path / "read.db"
    board = ReadModel(sqlite3.connect(path), source, "goal_board", batch_size=25)
    board.deploy(GoalBoardV1())
    board.swap(1)

    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        reader = sqlite3.connect(path, isolation_level=None)
        while not stop.is_set():
            try:
                rows = reader.execute("SELECT * FROM goal_board").fetchall()
                seen.append((len(rows[0]), len(rows), sum(r[2] for r in rows)))
            except sqlite3.Error as error:  # pragma: no cover - would fail the test
                errors.append(error)
        reader.close()

    def reader_sees(width: int) -> None:
        deadline = time.monotonic() + 20
        while not seen or seen[-1][0] != width:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.001)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    reader_sees(3)  # reading version 1 before the rebuild starts
    board.deploy(GoalBoardV2())
    for i in range(20):
        source.add(f"goal-{i % GOALS}", "SessionLogged")  # new events during the rebuild
        board.run_once(1)
        board.run_once(2)
    board.swap(2)
    reader_sees(5)  # and version 2 after the swap
    stop.set()
    thread.join(10)
    assert not errors
    total = 200 * GOALS + 20
    assert all(count == GOALS for _, count, _ in seen)  # never an empty or half-filled table
    assert {width for width, _, _ in seen} == {3, 5}  # v1 (3 columns), then v2 (5 columns)
    v2 = [sessions for width, _, sessions in seen if width == 5]
    assert v2 and set(v2) == {total}  # v2 was only ever visible complete


def test_after_the_swap_the_new_version_equals_a_build_from_scratch():
    source = MemorySource()
    history(source, 4)
    db = sqlite3.connect(":memory:")
    board = ReadModel(db, source, "goal_board", batch_size=2)
    board.deploy(GoalBoardV1())
    board.swap(1)
    board.deploy(GoalBoardV2())
    board.run_once(2)
    source.add("goal-0", "SessionLogged")
    board.swap(2)  # also applies what was still missing
    fresh = ReadModel(sqlite3.connect(":memory:"), source, "goal_board")
    fresh.deploy(GoalBoardV2())
    fresh.swap(2)
    query = "SELECT * FROM goal_board ORDER BY goal"
    assert db.execute(query).fetchall() == fresh.db.execute(query).fetchall()
    assert db.execute(query).fetchone() == ("goal-0", "Goal 0", 5, 4, 100)
    assert board.status() == [(1, 15, "retired"), (2, 16, "live")]
    tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "goal_board_v1" not in tables and "goal_board_v2" in tables


def test_a_read_model_fed_by_the_real_store_rebuilds_the_same_way(tmp_path):
    with SQLiteEventStore(tmp_path / "events.db") as store:
        store.append("goal-a", [NewEvent("GoalSet", {"title": "A", "target": 2}),
                                NewEvent("SessionLogged", {})], expected_version=0)
        board = ReadModel(sqlite3.connect(":memory:"), store, "goal_board")
        board.deploy(GoalBoardV2())
        board.catch_up()
        board.swap(2)
        assert board.db.execute("SELECT * FROM goal_board").fetchall() == [
            ("goal-a", "A", 1, 2, 50)]


def test_a_failed_batch_leaves_the_version_and_its_position_untouched():
    source = MemorySource()
    source.add("goal-a", "GoalSet", title="A", target=2)
    source.add("goal-a", "GoalSet", title="A again", target=2)  # duplicate key: refused
    board = ReadModel(sqlite3.connect(":memory:"), source, "goal_board")
    board.deploy(GoalBoardV1())
    with pytest.raises(sqlite3.IntegrityError):
        board.run_once(1)
    assert board.status() == [(1, 0, "building")]
    assert board.db.execute("SELECT count(*) FROM goal_board_v1").fetchone() == (0,)


def test_a_read_model_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(ValueError, match="invalid read model name 'goal board; DROP'"):
        ReadModel(sqlite3.connect(":memory:"), MemorySource(), "goal board; DROP")


def test_main_shows_v1_serving_while_v2_builds_then_the_swap(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        "v1 live        : [('goal-run', 'Run 5 km', 3), ('goal-write', 'Write daily', 3)]",
        "rebuilding     : [(1, 9, 'live'), (2, 6, 'building')]",
        "readers see    : [('goal-run', 'Run 5 km', 4), ('goal-write', 'Write daily', 3)]",
        "v2 swapped in  : [('goal-run', 'Run 5 km', 4, 4, 100), "
        "('goal-write', 'Write daily', 4, 10, 40)]",
        "versions       : [(1, 9, 'retired'), (2, 10, 'live')]",
    ]
