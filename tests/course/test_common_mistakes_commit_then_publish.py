"""Dual write: commit-then-publish loses events, publish-then-commit invents them, the outbox does neither."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_commit_then_publish import (
    Crash,
    commit_then_publish,
    consume,
    main,
    open_db,
    publish_then_commit,
    relay,
    save_with_outbox,
    stored,
)


def test_the_demo_loses_one_event_invents_one_and_the_outbox_neither(capsys):
    main()
    assert capsys.readouterr().out == (
        "commit_then_publish: stored ['e-1', 'e-2', 'e-3'], delivered ['e-1', 'e-3'] ->"
        " lost ['e-2'], ghosts []\n"
        "publish_then_commit: stored ['e-1', 'e-3'], delivered ['e-1', 'e-2', 'e-3'] ->"
        " lost [], ghosts ['e-2']\n"
        "outbox + relay     : stored ['e-1', 'e-2', 'e-3'], delivered ['e-1', 'e-2', 'e-3'],"
        " 1 duplicate skipped\n")


entry_ids = st.integers(1, 12).map(lambda n: [f"e-{i}" for i in range(1, n + 1)])


def run_broken(save, ids, crashing):
    db, broker = open_db(), []
    for entry_id in ids:
        try:
            save(db, broker, entry_id, "text", crash=entry_id in crashing)
        except Crash:
            pass
    return set(stored(db)), {e.removeprefix("ev-") for e in broker}


@settings(max_examples=100, deadline=None)
@given(entry_ids, st.sets(st.integers(1, 12).map(lambda n: f"e-{n}")))
def test_broken_commit_then_publish_loses_exactly_the_events_of_the_crashes(ids, crashing):
    entries, delivered = run_broken(commit_then_publish, ids, crashing)
    assert entries == set(ids)
    assert entries - delivered == crashing & set(ids)


@settings(max_examples=100, deadline=None)
@given(entry_ids, st.sets(st.integers(1, 12).map(lambda n: f"e-{n}")))
def test_broken_publish_then_commit_delivers_events_for_entries_that_do_not_exist(ids, crashing):
    entries, delivered = run_broken(publish_then_commit, ids, crashing)
    assert delivered == set(ids)
    assert delivered - entries == crashing & set(ids)


@settings(max_examples=150, deadline=None)
@given(entry_ids, st.sets(st.integers(1, 12).map(lambda n: f"ev-e-{n}")),
       st.sets(st.integers(1, 12)))
def test_fixed_the_outbox_delivers_every_stored_entry_once_whatever_the_relay_crashes(
        ids, relay_crashes, relay_runs_after):
    db, broker = open_db(), []
    pending = set(relay_crashes)

    def run_relay() -> None:
        while True:  # a supervisor restarts a killed relay
            try:
                relay(db, broker, crash_after=pending)
                return
            except Crash:
                pending.discard(broker[-1])  # it crashes once, right after publishing

    for n, entry_id in enumerate(ids, 1):
        save_with_outbox(db, entry_id, "text")
        if n in relay_runs_after:  # the relay runs at arbitrary moments between saves
            run_relay()
    run_relay()
    applied, duplicates = consume(broker)
    assert applied == [f"ev-{e}" for e in ids]  # every entry, once, in commit order
    assert sorted(stored(db)) == sorted(ids)
    assert duplicates == len(relay_crashes & {f"ev-{e}" for e in ids})


def test_an_empty_entry_is_refused_by_name_and_nothing_stored_is_lost():
    db = open_db()
    save_with_outbox(db, "e-1", "ran 5 km")
    with pytest.raises(ValueError, match="entry 'e-2' is empty: nothing to save"):
        save_with_outbox(db, "e-2", "  ")
    assert stored(db) == ["e-1"]
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)


def test_when_the_event_cannot_be_written_the_entry_is_not_written_either():
    db = open_db()
    db.execute("CREATE TRIGGER full BEFORE INSERT ON outbox "
               "BEGIN SELECT RAISE(ABORT, 'outbox full'); END")
    with pytest.raises(sqlite3.IntegrityError, match="outbox full"):
        save_with_outbox(db, "e-1", "ran 5 km")
    assert stored(db) == []
