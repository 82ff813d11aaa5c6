"""Dynamic Consistency Boundary (DCB): append with a condition over a query, on SQLite.

There are no streams. Every event carries a type and a set of tags
(``course:journaling``, ``member:ana``). A decision reads the events that
matter to it with a **query** (items of types and tags), remembers the head
position it read at, and appends with an **append condition**: "fail if any
event matching my query was appended after that position". Two decisions
conflict only if one appended something the other's query would have read.

The example is the classic one, course enrolment, in the coaching app: group
courses have a number of places, and a member may take at most
``MAX_COURSES`` courses at once. The decision spans two entities, the course
and the member, without a saga and without one giant stream.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TYPE = re.compile(r"[A-Za-z][\w.]{0,99}")
_TAG = re.compile(r"[a-z][a-z0-9_-]{0,49}:[\w.@-]{1,150}")


# --8<-- [start:model]
@dataclass(frozen=True)
class Event:
    """An event to append: a type, a JSON object, and the tags a query can find it by."""

    type: str
    data: dict[str, Any]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredEvent:
    position: int
    type: str
    data: dict[str, Any]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class QueryItem:
    """Matches an event whose type is one of ``types`` (any, if empty) and that has every tag."""

    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    """Matches an event that matches any of its items."""

    items: tuple[QueryItem, ...]


@dataclass(frozen=True)
class AppendCondition:
    """Refuse the append if an event matching ``query`` was stored after position ``after``."""

    query: Query
    after: int


class AppendConditionFailed(Exception):
    """A concurrent decision changed what this one read; nothing was appended."""
# --8<-- [end:model]


def _check_query(query: Query) -> None:
    if not isinstance(query, Query) or not query.items:
        raise ValueError(f"a query needs at least one QueryItem, got {query!r}")
    for item in query.items:
        if not item.types and not item.tags:
            raise ValueError("a query item needs a type or a tag; an empty one would match "
                             "every event and make every decision conflict with every other")
        _check_names(item.types, item.tags)


def _check_names(types: Sequence[str], tags: Sequence[str]) -> None:
    for name in types:
        if not isinstance(name, str) or not _TYPE.fullmatch(name):
            raise ValueError(f"invalid event type {name!r}")
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r}: use 'name:value', e.g. 'member:ana'")


def _matching_sql(query: Query, after: int, limit: int | None) -> tuple[str, list[Any]]:
    """One SELECT per item (tags joined on the tag index), united, in position order."""
    selects, args = [], []
    for item in query.items:
        sql = "SELECT e.position FROM events e"
        for i, tag in enumerate(item.tags):
            sql += f" JOIN event_tags t{i} ON t{i}.position = e.position AND t{i}.tag = ?"
            args.append(tag)
        sql += " WHERE e.position > ?"
        args.append(after)
        if item.types:
            sql += f" AND e.type IN ({','.join('?' * len(item.types))})"
            args += item.types
        selects.append(sql)
    sql = " UNION ".join(selects) + " ORDER BY 1" + (f" LIMIT {limit}" if limit else "")
    return sql, args


# --8<-- [start:store]
class SQLiteDcbStore:
    """An event store with one global sequence, tags, and conditional appends."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY,
                type TEXT NOT NULL, data TEXT NOT NULL, tags TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_by_type ON events (type, position);
            CREATE TABLE IF NOT EXISTS event_tags (tag TEXT NOT NULL, position INTEGER NOT NULL,
                PRIMARY KEY (tag, position)) WITHOUT ROWID;""")
        self._lock = threading.Lock()  # one transaction at a time on this connection

    def read(self, query: Query, *, after: int = 0) -> tuple[list[StoredEvent], int]:
        """The events matching ``query`` after ``after``, and the head they were read at."""
        _check_query(query)
        sql, args = _matching_sql(query, after, None)
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot for the events and the head
            try:
                rows = self._db.execute(
                    f"SELECT position, type, data, tags FROM events WHERE position IN ({sql}) "
                    "ORDER BY position", args).fetchall()
                head = self._db.execute("SELECT coalesce(max(position), 0) FROM events"
                                        ).fetchone()[0]
            finally:
                self._db.execute("COMMIT")
        return [StoredEvent(p, t, json.loads(d), tuple(json.loads(g))) for p, t, d, g in rows], head

    def append(self, events: Sequence[Event], condition: AppendCondition | None = None) -> int:
        """Append all of ``events`` or none; return the position of the last one.

        Raises:
            AppendConditionFailed: an event matching the condition's query was
                stored after ``condition.after``. The message names it.
            ValueError, TypeError: bad input, refused before anything is written.
        """
        rows = self._encode(events)
        if condition is not None:
            _check_query(condition.query)
            if isinstance(condition.after, bool) or not isinstance(condition.after, int) \
                    or condition.after < 0:
                raise ValueError(f"condition.after must be an int >= 0, not {condition.after!r}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock, before the check
            try:
                head = self._db.execute("SELECT coalesce(max(position), 0) FROM events"
                                        ).fetchone()[0]
                if condition is not None:
                    self._check_condition(condition, head)
                for position, (type_, data, tags) in enumerate(rows, head + 1):
                    self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                                     (position, type_, data, json.dumps(tags)))
                    self._db.executemany("INSERT INTO event_tags VALUES (?, ?)",
                                         [(tag, position) for tag in tags])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return head + len(rows)

    def _check_condition(self, condition: AppendCondition, head: int) -> None:
        if condition.after > head:
            raise ValueError(f"condition.after={condition.after} is beyond the store's head "
                             f"{head}: a decision cannot have read the future")
        sql, args = _matching_sql(condition.query, condition.after, 1)
        found = self._db.execute(
            f"SELECT position, type, tags FROM events WHERE position IN ({sql})", args).fetchone()
        if found:
            raise AppendConditionFailed(
                f"event {found[0]} {found[1]} {json.loads(found[2])} matches the decision's "
                f"query and was stored after position {condition.after}; nothing was appended")
# --8<-- [end:store]

    def _encode(self, events: Sequence[Event]) -> list[tuple[str, str, list[str]]]:
        if not events:
            raise ValueError("no events to append")
        rows = []
        for index, event in enumerate(events):
            if not isinstance(event, Event):
                raise TypeError(f"event {index}: expected an Event, not {type(event).__name__}")
            _check_names([event.type], event.tags)
            try:
                text = json.dumps(event.data, allow_nan=False, ensure_ascii=False)
            except (TypeError, ValueError) as error:
                raise TypeError(f"event {index} ({event.type}): data is not JSON: {error}") from None
            if not isinstance(event.data, dict) or json.loads(text) != event.data:
                raise TypeError(f"event {index} ({event.type}): data must be a JSON object "
                                "that survives a round trip")
            rows.append((event.type, text, sorted(set(event.tags))))
        return rows

    def close(self) -> None:
        self._db.close()


# --8<-- [start:decision]
MAX_COURSES = 2  # a member takes at most this many courses at once


class EnrolmentRefused(Exception):
    """The rules say no; retrying will not change that."""


def define_course(store: SQLiteDcbStore, course: str, places: int) -> int:
    return store.append([Event("CourseDefined", {"course": course, "places": places},
                               (f"course:{course}",))])


def change_places(store: SQLiteDcbStore, course: str, places: int) -> int:
    return store.append([Event("CoursePlacesChanged", {"course": course, "places": places},
                               (f"course:{course}",))])


def enrol(store: SQLiteDcbStore, member: str, course: str, *, attempts: int = 5) -> int:
    """Enrol ``member`` in ``course`` if it has a place and the member has room for it.

    The consistency boundary is exactly what the rules read: the course's
    definition and enrolments, and this member's enrolments. A conflicting
    concurrent decision makes the append fail; the decision then runs again
    on fresh facts, up to ``attempts`` times.
    """
    query = Query((
        QueryItem(("CourseDefined", "CoursePlacesChanged"), (f"course:{course}",)),
        QueryItem(("MemberEnrolled",), (f"course:{course}",)),
        QueryItem(("MemberEnrolled",), (f"member:{member}",)),
    ))
    for attempt in range(1, attempts + 1):
        events, head = store.read(query)
        places, in_course, courses_of_member = None, set(), set()
        for event in events:
            if event.type in ("CourseDefined", "CoursePlacesChanged"):
                places = event.data["places"]
            elif event.data["course"] == course:
                in_course.add(event.data["member"])
            if event.type == "MemberEnrolled" and event.data["member"] == member:
                courses_of_member.add(event.data["course"])
        if places is None:
            raise EnrolmentRefused(f"no course {course!r}")
        if member in in_course:
            raise EnrolmentRefused(f"{member} is already enrolled in {course}")
        if len(in_course) >= places:
            raise EnrolmentRefused(f"{course} is full ({len(in_course)} of {places} places)")
        if len(courses_of_member) >= MAX_COURSES:
            raise EnrolmentRefused(f"{member} already takes {MAX_COURSES} courses: "
                                   f"{', '.join(sorted(courses_of_member))}")
        enrolled = Event("MemberEnrolled", {"member": member, "course": course},
                         (f"member:{member}", f"course:{course}"))
        try:
            return store.append([enrolled], AppendCondition(query, after=head))
        except AppendConditionFailed:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
# --8<-- [end:decision]


def main() -> None:
    """Two coaches enrol members at the same moment; the store keeps both rules."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteDcbStore(Path(tmp) / "courses.db")
        for course, places in (("journaling", 2), ("sleep", 5), ("running", 5)):
            define_course(store, course, places)
        print(f"ana -> journaling : stored at position {enrol(store, 'ana', 'journaling')}")

        # Two decisions read the same facts before either appends.
        query = Query((QueryItem(("CourseDefined", "MemberEnrolled"), ("course:journaling",)),))
        _, head = store.read(query)
        for member in ("ben", "cleo"):
            event = Event("MemberEnrolled", {"member": member, "course": "journaling"},
                          (f"member:{member}", "course:journaling"))
            try:
                position = store.append([event], AppendCondition(query, after=head))
                print(f"{member} -> journaling : stored at position {position}")
            except AppendConditionFailed as error:
                print(f"{member} -> journaling : {error}")
        for member, course in (("cleo", "journaling"), ("ana", "sleep"), ("ana", "running")):
            try:
                print(f"{member} -> {course:<10} : stored at position {enrol(store, member, course)}")
            except EnrolmentRefused as error:
                print(f"{member} -> {course:<10} : refused, {error}")

        # Decisions about different courses and members do not conflict.
        queries = [Query((QueryItem((), (f"course:{c}",)), QueryItem((), (f"member:{m}",))))
                   for c, m in (("sleep", "dan"), ("running", "eve"))]
        heads = [store.read(q)[1] for q in queries]
        for (course, member), q, h in zip((("sleep", "dan"), ("running", "eve")), queries, heads):
            position = store.append([Event("MemberEnrolled", {"member": member, "course": course},
                                           (f"member:{member}", f"course:{course}"))],
                                    AppendCondition(q, after=h))
            print(f"{member} -> {course:<10} : read at head {h}, stored at position {position}")


if __name__ == "__main__":
    main()
