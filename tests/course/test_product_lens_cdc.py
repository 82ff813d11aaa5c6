"""Trigger-based CDC: every committed change becomes one event, rolled-back ones none, across poller crashes."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.product_lens_cdc import (
    GoalBoard,
    install_capture,
    legacy_db,
    main,
    poll,
)


def test_the_demo_follows_the_legacy_table_through_a_poller_crash(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        ("poller   : published ['snapshot g-1', 'snapshot g-9', 'created g-2'], then poller"
        " killed after publishing change 3"),
        ("restarted: published ['snapshot g-1', 'snapshot g-9', 'created g-2', 'updated g-1',"
        " 'deleted g-2']"),
        "board    : {'g-1': ('ana', 12), 'g-9': ('caro', 21)}, 3 duplicates skipped",
        "legacy   : {'g-1': ('ana', 12), 'g-9': ('caro', 21)}",
    ]


goal_ids = st.sampled_from(["g-1", "g-2", "g-3", "g-4"])
legacy_ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), goal_ids, st.integers(1, 42), st.booleans()),
    st.tuples(st.just("update"), goal_ids, st.integers(1, 42), st.booleans()),
    st.tuples(st.just("delete"), goal_ids, st.just(0), st.booleans()),
    st.tuples(st.just("poll"), st.integers(1, 5), st.integers(0, 40), st.booleans()),
), max_size=40)


def legacy_write(db, op, goal_id, km, rolled_back):
    sql = {"insert": ("INSERT INTO goals VALUES (?, 'ana', ?)", (goal_id, km)),
           "update": ("UPDATE goals SET km = ? WHERE id = ?", (km, goal_id)),
           "delete": ("DELETE FROM goals WHERE id = ?", (goal_id,))}[op]
    db.execute("BEGIN")
    try:
        db.execute(*sql)
    except sqlite3.IntegrityError:  # the legacy app's own error handling
        db.execute("ROLLBACK")
        return
    db.execute("ROLLBACK" if rolled_back else "COMMIT")


def table(db):
    return {goal_id: (user, km) for goal_id, user, km in db.execute("SELECT * FROM goals")}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(goal_ids, st.integers(1, 42)), max_size=4), legacy_ops)
def test_the_board_ends_equal_to_the_legacy_table_whatever_crashes_and_rollbacks(before, ops):
    db = legacy_db()
    for goal_id, km in before:
        legacy_write(db, "insert", goal_id, km, rolled_back=False)
    install_capture(db)
    board, published = GoalBoard(), []

    def publish(event):
        published.append(event)
        board(event)

    for op, a, b, c in ops:
        if op == "poll":
            try:
                poll(db, publish, batch=a, crash_after=b if c else None)
            except SystemExit:
                pass
        else:
            legacy_write(db, op, a, b, c)
    while poll(db, publish, batch=3):
        pass
    assert board.goals == table(db)
    ids = [e["id"] for e in published]
    assert board.duplicates == len(ids) - len(set(ids))
    first_seen = list(dict.fromkeys(ids))  # after dedup, events arrive in change order
    assert first_seen == sorted(first_seen, key=lambda i: int(i.split("-")[1]))
    assert db.execute("SELECT count(*) FROM goal_changes").fetchone() == (0,)  # pruned


def test_a_rolled_back_write_leaves_no_change_and_no_event():
    db = legacy_db()
    install_capture(db)
    legacy_write(db, "insert", "g-1", 10, rolled_back=True)
    assert db.execute("SELECT count(*) FROM goal_changes").fetchone() == (0,)
    board = GoalBoard()
    assert poll(db, board) == 0 and board.goals == {}


def test_a_second_install_is_refused_and_capture_keeps_working_once():
    db = legacy_db()
    install_capture(db)
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        install_capture(db)
    assert not db.in_transaction
    legacy_write(db, "insert", "g-1", 10, rolled_back=False)
    assert db.execute("SELECT op, goal_id FROM goal_changes").fetchall() == [("created", "g-1")]


def test_a_crashed_poller_does_not_move_its_checkpoint():
    db = legacy_db()
    install_capture(db)
    for goal_id in ("g-1", "g-2"):
        legacy_write(db, "insert", goal_id, 5, rolled_back=False)
    with pytest.raises(SystemExit, match="poller killed after publishing change 2"):
        poll(db, GoalBoard(), crash_after=2)
    assert db.execute("SELECT seq FROM poller_checkpoint").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM goal_changes").fetchone() == (2,)


def test_installing_while_the_legacy_app_holds_the_write_lock_fails_cleanly(tmp_path):
    path = str(tmp_path / "legacy.db")
    app = legacy_db(path)
    app.execute("BEGIN IMMEDIATE")  # the legacy app is mid-transaction
    app.execute("INSERT INTO goals VALUES ('g-1', 'ana', 10)")
    installer = legacy_db(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        install_capture(installer)
    assert not installer.in_transaction
    app.execute("COMMIT")
    install_capture(installer)  # once the lock is free, g-1 is captured by the snapshot
    board = GoalBoard()
    poll(installer, board)
    assert board.goals == {"g-1": ("ana", 10)}
    app.close()
    installer.close()
