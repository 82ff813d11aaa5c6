"""The SQLite read models: equal to a plain fold of the events whatever the batching and
re-delivery, one checkpoint each, consistent snapshots, and fed by the command side."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.cqrs.command_side_handler import (
    CommandHandler,
    GoalStore,
    LogSession,
    SetGoal,
)
from snippets.cqrs.query_side_read_models import (
    CoachingDashboard,
    CoachingQueries,
    EveningReflection,
    Event,
    FollowUps,
    ProjectionError,
    Projector,
    main,
)
from tests.cqrs.coaching import answers, expected, histories


class Source:
    """A list of events; ``overlap`` re-sends that many events before ``after``."""

    def __init__(self, events, overlap: int = 0) -> None:
        self.events = [Event(i, stream, type_, data)
                       for i, (stream, type_, data) in enumerate(events, 1)]
        self.overlap = overlap

    def read_all(self, *, after: int = 0, limit: int = 1000):
        start = max(0, after - self.overlap)
        return self.events[start:start + limit]


def read_models():
    return [CoachingDashboard(), EveningReflection(), FollowUps()]


@settings(max_examples=50, deadline=None)
@given(history=histories, batch=st.integers(1, 15), overlap=st.integers(0, 3))
def test_the_read_models_answer_what_a_plain_fold_of_the_events_says(history, batch, overlap):
    overlap = min(overlap, batch - 1)  # a source that re-sends a whole page never moves on
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models(), batch_size=batch)
    source = Source(history, overlap)
    assert projector.catch_up(source) == 3 * len(history)  # re-sent events are skipped
    assert answers(CoachingQueries(db)) == expected(history)
    assert projector.catch_up(source) == 0


@settings(max_examples=30, deadline=None)
@given(history=histories, cut=st.integers(0, 40))
def test_catching_up_in_two_sittings_equals_catching_up_once(history, cut):
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models(), batch_size=4)
    projector.catch_up(Source(history[:cut]))
    projector.catch_up(Source(history))
    assert answers(CoachingQueries(db)) == expected(history)


def coaching_day():
    return [("goal-g0", "GoalSet", {"user": "ana", "goal_id": "g0", "title": "Run", "target": 2}),
            ("journal-ana", "EntryWritten", {"user": "ana", "entry_id": "e1", "day": "2025-03-01",
                                             "words": 100, "mood": 2}),
            ("goal-g0", "SessionLogged", {"user": "ana", "goal_id": "g0", "entry_id": "e1",
                                          "day": "2025-03-01"}),
            ("journal-ana", "EntryWritten", {"user": "ana", "entry_id": "e2", "day": "2025-03-01",
                                             "words": 50}),  # no mood: a malformed event
            ("journal-ana", "EntryWritten", {"user": "ana", "entry_id": "e3", "day": "2025-03-02",
                                             "words": 70, "mood": 4}),
            ("goal-g0", "SessionLogged", {"user": "ana", "goal_id": "g0", "entry_id": "e2",
                                          "day": "2025-03-01"}),  # the same goal, the same day
            ("goal-g0", "GoalAchieved", {"user": "ana", "goal_id": "g0", "day": "2025-03-01",
                                         "sessions": 2})]


def test_a_malformed_event_stops_only_the_read_model_that_needs_the_missing_field():
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models(), batch_size=3)
    history = coaching_day()
    with pytest.raises(ProjectionError, match=r"^evening_reflection failed at position 4 "
                                              r"\(journal-ana EntryWritten\): KeyError 'mood'; "
                                              "its batch was rolled back at 3$"):
        projector.catch_up(Source(history))
    assert projector.position("coaching_dashboard") == 7  # needs no mood: went on
    assert projector.position("evening_reflection") == 3  # stopped before the bad batch
    queries = CoachingQueries(db)
    assert queries.dashboard("ana").entries == 3
    assert queries.evening_reflection("ana", "2025-03-01").entries == 1  # nothing half-applied
    history[3][2]["mood"] = 3  # the producer's fix, replayed (an upcaster would do the same)
    projector.catch_up(Source(history))
    assert answers(queries) == expected(history)


def test_a_query_reads_its_rows_and_its_position_from_one_snapshot(tmp_path):
    path = tmp_path / "read.db"
    history = coaching_day()
    history[3][2]["mood"] = 3
    projector = Projector(sqlite3.connect(path), read_models(), batch_size=100)
    projector.catch_up(Source(history[:2]))
    queries = CoachingQueries(sqlite3.connect(path))
    with queries._snapshot("coaching_dashboard") as as_of:
        projector.catch_up(Source(history))  # commits while the query is in its snapshot
        (entries,) = queries.db.execute("SELECT entries FROM dashboard").fetchone()
    assert (as_of, entries) == (2, 1)  # the old state, whole
    assert queries.dashboard("ana").as_of == 7
    assert queries.dashboard("ana").entries == 3
    reflection = queries.evening_reflection("ana", "2025-03-01")
    assert (reflection.progressed, reflection.achieved) == (("Run",), ("Run",))


def test_an_event_type_no_read_model_knows_is_skipped_by_all_of_them():
    history = coaching_day()
    history[3][2]["mood"] = 3
    unknown = ("journal-ana", "EntryArchived", {"user": "ana", "entry_id": "e1",
                                                "day": "2025-03-01"})
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models())
    projector.catch_up(Source([*history, unknown]))
    assert answers(CoachingQueries(db)) == expected(history)
    assert projector.position("evening_reflection") == len(history) + 1


def test_unknown_users_and_days_find_nothing():
    db = sqlite3.connect(":memory:")
    Projector(db, read_models()).catch_up(Source([]))
    queries = CoachingQueries(db)
    assert queries.dashboard("zoe") is None
    assert queries.evening_reflection("zoe", "2025-03-01") is None
    assert queries.follow_ups() == []


class GoalStoreSource:
    """The command side's store seen as a source of events for the read models."""

    def __init__(self, store: GoalStore) -> None:
        self.store = store

    def read_all(self, *, after: int = 0, limit: int = 1000):
        return [Event(p, s, t, d) for p, s, _, t, d in self.store.events()[after:after + limit]]


def test_commands_on_the_write_side_show_up_on_the_dashboard_after_a_catch_up(tmp_path):
    store = GoalStore(tmp_path / "goals.db")
    handler = CommandHandler(store)
    handler.handle(SetGoal("c-1", "run", "ana", "Run 5 km", 2))
    handler.handle(LogSession("c-2", "run", "e1", "2025-03-03"))
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models())
    projector.catch_up(GoalStoreSource(store))
    board = CoachingQueries(db).dashboard("ana")
    assert [(g.title, g.sessions, g.achieved) for g in board.goals] == [("Run 5 km", 1, False)]
    result = handler.handle(LogSession("c-3", "run", "e2", "2025-03-04"))
    assert CoachingQueries(db).dashboard("ana").as_of < result.position  # not yet projected
    projector.catch_up(GoalStoreSource(store))
    board = CoachingQueries(db).dashboard("ana")
    assert board.as_of == result.position
    assert (board.active_goals, board.achieved_goals) == (0, 1)
    reflection = CoachingQueries(db).evening_reflection("ana", "2025-03-04")
    assert (reflection.progressed, reflection.achieved, reflection.mood) == (
        ("Run 5 km",), ("Run 5 km",), None)
    store.close()


def test_main_shows_three_read_models_from_the_same_events(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "applied        : 33 events (11 events x 3 read models)"
    assert lines[1] == ("dashboard      : ana: 3 entries, 480 words, streak 2 days to 2025-03-04, "
                        "goals 1 active, 1 achieved (as of position 11)")
    assert lines[4:8] == ["reflection     : ana", "  2025-03-04: 2 entries, 300 words, mood 2.5/5",
                          "  worked on: Read daily, Run 5 km", "  achieved: Run 5 km"]
    assert lines[-2] == "follow-ups     : [('2025-03-04', 'ana', 'e4', 2)]"
    assert lines[-1] == "unknown user   : None"


class Doubling(Source):
    """Sends every event of a page twice in a row: a transport that duplicates."""

    def read_all(self, *, after: int = 0, limit: int = 1000):
        return [e for event in super().read_all(after=after, limit=limit) for e in (event, event)]


class Swapping(Source):
    """Swaps the first two events after ``after``: a transport that reorders."""

    def read_all(self, *, after: int = 0, limit: int = 1000):
        page = super().read_all(after=after, limit=limit)
        return page[1::-1] + page[2:]


@settings(max_examples=30, deadline=None)
@given(history=histories, batch=st.integers(2, 15))
def test_an_event_sent_twice_within_one_page_counts_once(history, batch):
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models(), batch_size=batch)
    assert projector.catch_up(Doubling(history)) == 3 * len(history)
    assert answers(CoachingQueries(db)) == expected(history)


def test_an_event_sent_after_a_later_one_is_refused_and_nothing_of_its_page_is_kept():
    history = [("goal-g1", "GoalSet", {"user": "ana", "goal_id": "g1", "title": "Run",
                                       "target": 3})] + [
        ("goal-g1", "SessionLogged", {"user": "ana", "goal_id": "g1", "entry_id": f"e{i}",
                                      "day": "2025-03-03"}) for i in range(3)]
    db = sqlite3.connect(":memory:")
    projector = Projector(db, read_models(), batch_size=10)
    with pytest.raises(ProjectionError, match=r"^coaching_dashboard: position 1 arrived after "
                                              r"position 2: the source is out of order; its "
                                              r"batch was rolled back at 0$"):
        projector.catch_up(Swapping(history))
    assert [projector.position(m.name) for m in read_models()] == [0, 0, 0]
    assert projector.catch_up(Source(history)) == 3 * len(history)  # nothing was lost
    assert answers(CoachingQueries(db)) == expected(history)
