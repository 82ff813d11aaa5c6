"""DCB on SQLite: concurrent decisions over the same facts are refused, unrelated ones are not,
and nothing already stored is ever lost."""

from __future__ import annotations

import json
import multiprocessing
import queue
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.dynamic_consistency_boundary import (
    MAX_COURSES,
    AppendCondition,
    AppendConditionFailed,
    EnrolmentRefused,
    Event,
    Query,
    QueryItem,
    SQLiteDcbStore,
    change_places,
    define_course,
    enrol,
    main,
)


@pytest.fixture
def dcb(tmp_path) -> SQLiteDcbStore:
    opened = SQLiteDcbStore(tmp_path / "courses.db")
    yield opened
    opened.close()


def rows(path: Path) -> list[tuple]:
    return sqlite3.connect(path).execute("SELECT * FROM events ORDER BY position").fetchall()


def enrolled(path: Path, course: str | None = None, member: str | None = None) -> list[dict]:
    found = [json.loads(data) for _, type_, data, _ in rows(path) if type_ == "MemberEnrolled"]
    return [d for d in found if course in (None, d["course"]) and member in (None, d["member"])]


def race(path: Path, pairs: list[tuple[str, str]], results: queue.Queue,
         barrier: threading.Barrier) -> list[threading.Thread]:
    def worker(member: str, course: str) -> None:
        store = SQLiteDcbStore(path)  # its own connection, as another service would have
        barrier.wait(30)
        try:
            results.put((member, course, "stored", enrol(store, member, course, attempts=50)))
        except EnrolmentRefused as error:
            results.put((member, course, "refused", str(error)))
        finally:
            store.close()
    threads = [threading.Thread(target=worker, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    return threads


def test_eight_threads_racing_for_three_places_fill_exactly_three(dcb, tmp_path):
    path = tmp_path / "courses.db"
    define_course(dcb, "journaling", places=3)
    before = rows(path)
    results: queue.Queue = queue.Queue()
    members = [f"member{i}" for i in range(8)]
    for thread in race(path, [(m, "journaling") for m in members], results, threading.Barrier(8)):
        thread.join(60)
    outcomes = [results.get_nowait() for _ in members]
    stored = [o for o in outcomes if o[2] == "stored"]
    refused = [o for o in outcomes if o[2] == "refused"]
    assert len(stored) == 3 and len(refused) == 5
    assert all(o[3] == "journaling is full (3 of 3 places)" for o in refused)
    assert sorted(d["member"] for d in enrolled(path)) == sorted(o[0] for o in stored)
    assert rows(path)[:len(before)] == before  # nothing stored before the race changed
    assert [r[0] for r in rows(path)] == list(range(1, len(before) + 4))  # no gap, no extra


def test_of_eight_decisions_read_at_the_same_head_exactly_one_is_stored(dcb, tmp_path):
    path = tmp_path / "courses.db"
    define_course(dcb, "journaling", places=8)
    query = Query((QueryItem(("CourseDefined", "MemberEnrolled"), ("course:journaling",)),))
    barrier, results = threading.Barrier(8), queue.Queue()

    def decide_then_append(member: str) -> None:
        store = SQLiteDcbStore(path)
        _, head = store.read(query)
        barrier.wait(30)  # every decision has read before any appends
        try:
            store.append([Event("MemberEnrolled", {"member": member, "course": "journaling"},
                                (f"member:{member}", "course:journaling"))],
                         AppendCondition(query, head))
            results.put("stored")
        except AppendConditionFailed as error:
            results.put(str(error))
        store.close()

    threads = [threading.Thread(target=decide_then_append, args=(f"m{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outcomes = [results.get_nowait() for _ in threads]
    assert outcomes.count("stored") == 1
    assert all("event 2 MemberEnrolled" in o and "nothing was appended" in o
               for o in outcomes if o != "stored")
    assert len(enrolled(path)) == 1 and len(rows(path)) == 2


def test_one_member_racing_into_five_courses_gets_exactly_the_limit(dcb, tmp_path):
    path = tmp_path / "courses.db"
    courses = [f"course{i}" for i in range(5)]
    for course in courses:
        define_course(dcb, course, places=10)
    results: queue.Queue = queue.Queue()
    for thread in race(path, [("ana", c) for c in courses], results, threading.Barrier(5)):
        thread.join(60)
    outcomes = [results.get_nowait() for _ in courses]
    assert sum(o[2] == "stored" for o in outcomes) == MAX_COURSES
    assert len(enrolled(path, member="ana")) == MAX_COURSES
    assert all(o[3].startswith(f"ana already takes {MAX_COURSES} courses")
               for o in outcomes if o[2] == "refused")


def process_worker(path: str, member: str, barrier, results) -> None:
    store = SQLiteDcbStore(path)
    barrier.wait(60)
    try:
        results.put((member, "stored", enrol(store, member, "journaling", attempts=50)))
    except EnrolmentRefused as error:
        results.put((member, "refused", str(error)))


def test_four_processes_racing_for_two_places_fill_exactly_two(dcb, tmp_path):
    path = tmp_path / "courses.db"
    define_course(dcb, "journaling", places=2)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=process_worker, args=(str(path), f"p{i}", barrier, results))
               for i in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert sorted(o[1] for o in outcomes) == ["refused", "refused", "stored", "stored"]
    assert len(enrolled(path, course="journaling")) == 2
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_conflicting_append_names_the_event_it_missed_and_stores_nothing(dcb, tmp_path):
    define_course(dcb, "journaling", places=5)
    query = Query((QueryItem(("MemberEnrolled",), ("course:journaling",)),))
    _, head = dcb.read(query)
    dcb.append([Event("MemberEnrolled", {"member": "ben", "course": "journaling"},
                      ("member:ben", "course:journaling"))], AppendCondition(query, head))
    before = rows(tmp_path / "courses.db")
    late = [Event("MemberEnrolled", {"member": "cleo", "course": "journaling"},
                  ("member:cleo", "course:journaling")), Event("Noted", {"n": 1})]
    with pytest.raises(AppendConditionFailed, match=r"event 2 MemberEnrolled \['course:journaling', "
                                                    r"'member:ben'\] matches the decision's query "
                                                    r"and was stored after position 1"):
        dcb.append(late, AppendCondition(query, head))
    assert rows(tmp_path / "courses.db") == before


def test_decisions_about_different_courses_and_members_both_succeed(dcb):
    for course in ("sleep", "running"):
        define_course(dcb, course, places=5)
    plans = [("dan", "sleep"), ("eve", "running")]
    queries = [Query((QueryItem((), (f"course:{c}",)), QueryItem((), (f"member:{m}",))))
               for m, c in plans]
    heads = [dcb.read(q)[1] for q in queries]  # both read before either appends
    positions = [dcb.append([Event("MemberEnrolled", {"member": m, "course": c},
                                   (f"member:{m}", f"course:{c}"))], AppendCondition(q, h))
                 for (m, c), q, h in zip(plans, queries, heads)]
    assert heads == [2, 2] and positions == [3, 4]


def test_a_change_of_places_is_part_of_the_boundary(dcb):
    define_course(dcb, "journaling", places=2)
    enrol(dcb, "ana", "journaling")
    query = Query((QueryItem(("CourseDefined", "CoursePlacesChanged"), ("course:journaling",)),))
    _, head = dcb.read(query)
    change_places(dcb, "journaling", 1)
    with pytest.raises(AppendConditionFailed, match="CoursePlacesChanged"):
        dcb.append([Event("Noted", {})], AppendCondition(query, head))
    with pytest.raises(EnrolmentRefused, match=r"journaling is full \(1 of 1 places\)"):
        enrol(dcb, "ben", "journaling")


class ContendedStore(SQLiteDcbStore):
    """A real store where another writer enrols someone right after each of our reads."""

    def __init__(self, path: Path, rival: SQLiteDcbStore) -> None:
        super().__init__(path)
        self.rival, self.reads = rival, 0

    def read(self, query, *, after=0):
        result = super().read(query, after=after)
        self.reads += 1
        self.rival.append([Event("MemberEnrolled", {"member": f"rival{self.reads}",
                                                    "course": "journaling"},
                                 (f"member:rival{self.reads}", "course:journaling"))])
        return result


def test_enrol_decides_again_on_each_conflict_and_gives_up_after_its_attempts(dcb, tmp_path):
    define_course(dcb, "journaling", places=10)
    contended = ContendedStore(tmp_path / "courses.db", dcb)
    with pytest.raises(AppendConditionFailed):
        enrol(contended, "ana", "journaling", attempts=3)
    assert contended.reads == 3
    assert enrolled(tmp_path / "courses.db", member="ana") == []
    with pytest.raises(EnrolmentRefused, match="journaling is full"):
        enrol(contended, "ben", "journaling", attempts=20)  # rivals fill it meanwhile


@pytest.mark.parametrize("member, course, reason", [
    ("ana", "knitting", "no course 'knitting'"),
    ("ana", "journaling", "ana is already enrolled in journaling"),
])
def test_the_rules_refuse_with_a_reason(dcb, member, course, reason):
    define_course(dcb, "journaling", places=3)
    enrol(dcb, "ana", "journaling")
    with pytest.raises(EnrolmentRefused, match=reason):
        enrol(dcb, member, course)


ITEM = QueryItem(("MemberEnrolled",), ("member:ana",))


@pytest.mark.parametrize("events, condition, error, message", [
    ([], None, ValueError, "no events to append"),
    (["MemberEnrolled"], None, TypeError, "expected an Event, not str"),
    ([Event("bad type!", {})], None, ValueError, "invalid event type 'bad type!'"),
    ([Event("Noted", {}, ("Member Ana",))], None, ValueError, "invalid tag 'Member Ana'"),
    ([Event("Noted", {"at": {1, 2}})], None, TypeError, "data is not JSON"),
    ([Event("Noted", {"pair": (1, 2)})], None, TypeError, "survives a round trip"),
    ([Event("Noted", {})], AppendCondition(Query(()), 0), ValueError, "at least one QueryItem"),
    ([Event("Noted", {})], AppendCondition(Query((QueryItem(),)), 0), ValueError,
     "needs a type or a tag"),
    ([Event("Noted", {})], AppendCondition(Query((ITEM,)), -1), ValueError, "int >= 0"),
    ([Event("Noted", {})], AppendCondition(Query((ITEM,)), True), ValueError, "int >= 0"),
    ([Event("Noted", {})], AppendCondition(Query((ITEM,)), 99), ValueError,
     "after=99 is beyond the store's head 1"),
])
def test_bad_input_is_refused_with_the_problem_named_and_nothing_is_lost(
        dcb, tmp_path, events, condition, error, message):
    define_course(dcb, "journaling", places=3)
    before = rows(tmp_path / "courses.db")
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        dcb.append(events, condition)
    assert rows(tmp_path / "courses.db") == before
    assert dcb.append([Event("Noted", {})]) == 2  # the store still works


tags = st.sampled_from(["course:a", "course:b", "member:ana", "member:ben"])
types = st.sampled_from(["CourseDefined", "MemberEnrolled", "Noted"])
stored_events = st.lists(st.builds(Event, types, st.just({}), st.lists(tags, max_size=3).map(tuple)),
                         min_size=1, max_size=25)
items = st.builds(QueryItem, st.lists(types, max_size=2).map(tuple),
                  st.lists(tags, max_size=2).map(tuple)).filter(lambda i: i.types or i.tags)


@settings(max_examples=60, deadline=None)
@given(stored_events, st.lists(items, min_size=1, max_size=3), st.integers(0, 25))
def test_a_query_matches_exactly_what_its_definition_says(tmp_path_factory, events, query_items,
                                                          after):
    store = SQLiteDcbStore(tmp_path_factory.mktemp("q") / "q.db")
    store.append(events)
    query = Query(tuple(query_items))
    found, head = store.read(query, after=after)
    expected = [p for p, e in enumerate(events, 1) if p > after and any(
        (not i.types or e.type in i.types) and set(i.tags) <= set(e.tags) for i in query_items)]
    assert [e.position for e in found] == expected and head == len(events)
    if after <= head:
        condition = AppendCondition(query, after)
        if expected:
            with pytest.raises(AppendConditionFailed, match=f"event {expected[0]} "):
                store.append([Event("Noted", {})], condition)
        else:
            assert store.append([Event("Noted", {})], condition) == head + 1
    store.close()


def test_main_shows_the_conflict_the_retry_and_the_unrelated_decisions(capsys):
    main()
    out = capsys.readouterr().out
    assert "cleo -> journaling : event 5 MemberEnrolled ['course:journaling', 'member:ben'] " \
           "matches the decision's query and was stored after position 4" in out
    assert "cleo -> journaling : refused, journaling is full (2 of 2 places)" in out
    assert "ana -> running    : refused, ana already takes 2 courses: journaling, sleep" in out
    assert "eve -> running    : read at head 6, stored at position 8" in out
