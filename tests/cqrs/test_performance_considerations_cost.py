"""The read model and both recomputations give the same dashboard; the work each does."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.cqrs.performance_considerations_cost import (
    CoachingStore,
    Dashboard,
    coaching_history,
    main,
)

event = st.one_of(
    st.builds(lambda u, w: (f"journal-{u}", "EntryWritten", {"user": u, "words": w}),
              st.sampled_from(["ana", "ben"]), st.integers(0, 1000)),
    st.builds(lambda u: (f"goal-{u}-1", "SessionLogged", {"user": u}),
              st.sampled_from(["ana", "ben"])),
    st.builds(lambda u: (f"coach-{u}", "InsightRecorded", {"user": u, "text": "ok"}),
              st.sampled_from(["ana", "ben"])),
)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(event, min_size=1, max_size=10), max_size=6))
def test_the_read_model_and_both_recomputations_give_the_same_dashboard(batches):
    store = CoachingStore()
    for batch in batches:
        store.append(batch)
    everything = [e for batch in batches for e in batch]
    for user in ("ana", "ben", "zoe"):
        mine = [e for e in everything if e[2]["user"] == user]
        model = store.from_read_model(user)
        log = store.recompute_from_log(user)
        indexed = store.recompute_from_user_events(user)
        assert model.dashboard == log.dashboard == indexed.dashboard
        assert model.dashboard == Dashboard(
            user, sum(t == "EntryWritten" for _, t, _ in mine),
            sum(d.get("words", 0) for _, _, d in mine),
            sum(t == "SessionLogged" for _, t, _ in mine),
            sum(t == "InsightRecorded" for _, t, _ in mine))
        assert (model.work, log.work, indexed.work) == (1, len(everything), len(mine))


def test_a_batch_with_an_unknown_event_type_stores_none_of_it():
    store = CoachingStore()
    store.append([("journal-ana", "EntryWritten", {"user": "ana", "words": 10})])
    with pytest.raises(KeyError, match="GoalRenamed"):
        store.append([("journal-ana", "EntryWritten", {"user": "ana", "words": 20}),
                      ("goal-ana-1", "GoalRenamed", {"user": "ana"})])
    assert store.recompute_from_log("ana").work == 1
    assert store.from_read_model("ana").dashboard.words == 10


def test_a_failure_that_makes_sqlite_roll_back_on_its_own_is_reported_as_itself():
    store = CoachingStore()
    store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events "
                     "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
        store.append([("journal-ana", "EntryWritten", {"user": "ana", "words": 10})])
    assert store.from_read_model("ana").dashboard == Dashboard("ana")


def test_the_generated_history_is_the_same_on_every_call_and_spread_over_users():
    events = coaching_history(1_000, 10)
    assert events == coaching_history(1_000, 10)
    assert {d["user"] for _, _, d in events} == {f"u{i:03}" for i in range(10)}
    kinds = [t for _, t, _ in events]
    assert (kinds.count("EntryWritten"), kinds.count("SessionLogged"),
            kinds.count("InsightRecorded")) == (600, 300, 100)


def test_main_shows_one_answer_and_three_amounts_of_work(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("1,000 events, 10 users: Dashboard(user='u003', entries=60, words=14560, "
                        "sessions=30, notes=10)")
    assert lines[1:4] == [
        "  read model               : reads      1 rows, same answer: True",
        "  recompute, whole log     : reads  1,000 rows, same answer: True",
        "  recompute, user's events : reads    100 rows, same answer: True"]
    assert lines[6] == "  recompute, whole log     : reads 10,000 rows, same answer: True"
