"""The enrolment rules with per-stream optimistic concurrency, and where that breaks.

A classic event store protects one stream at a time: append with the version
you read, or be refused. The enrolment decision reads two entities, the course
and the member. Put each course in its own stream and the member's limit is
unprotected: two enrolments of the same member in two courses touch two
streams, and both succeed. Put everything in one stream and the rule holds,
but every decision now conflicts with every other, related or not.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

MAX_COURSES = 2


class VersionConflictError(Exception):
    """The stream moved on since it was read; nothing was appended."""


class StreamStore:
    """A minimal event store: streams of events, appended with an expected version."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS events (stream TEXT, version INTEGER, "
                         "type TEXT, data TEXT, PRIMARY KEY (stream, version))")

    def read(self, stream: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        rows = self._db.execute("SELECT type, data FROM events WHERE stream = ? ORDER BY version",
                                (stream,)).fetchall()
        return [(t, json.loads(d)) for t, d in rows], len(rows)

    def enrolments_of(self, member: str) -> set[str]:
        """Every course the member is enrolled in, across all streams (not version-checked)."""
        rows = self._db.execute("SELECT data FROM events WHERE type = 'MemberEnrolled'").fetchall()
        return {d["course"] for (text,) in rows if (d := json.loads(text))["member"] == member}

    def append(self, stream: str, type_: str, data: dict[str, Any], *, expected: int) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (actual,) = self._db.execute("SELECT count(*) FROM events WHERE stream = ?",
                                         (stream,)).fetchone()
            if actual != expected:
                raise VersionConflictError(f"stream {stream!r}: expected version {expected}, "
                                           f"but it is at {actual}; nothing was appended")
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                             (stream, actual + 1, type_, json.dumps(data)))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return actual + 1


# --8<-- [start:decide]
def decide(store: StreamStore, stream: str, member: str, course: str) -> tuple[dict, int]:
    """Check the rules against ``stream``; return the event to append and the version read."""
    events, version = store.read(stream)
    places = {d["course"]: d["places"] for t, d in events if t == "CourseDefined"}
    taken = [d["course"] for t, d in events if t == "MemberEnrolled"]
    if taken.count(course) >= places[course]:
        raise ValueError(f"{course} is full")
    courses = store.enrolments_of(member)  # read outside the stream: no version protects it
    if len(courses) >= MAX_COURSES:
        raise ValueError(f"{member} already takes {MAX_COURSES} courses")
    return {"member": member, "course": course}, version
# --8<-- [end:decide]


def main() -> None:
    """Interleave two decisions (both read, then both append) under two stream designs."""
    with tempfile.TemporaryDirectory() as tmp:
        store = StreamStore(Path(tmp) / "streams.db")
        for course in ("journaling", "sleep", "running"):
            store.append(f"course-{course}", "CourseDefined", {"course": course, "places": 5},
                         expected=0)
            store.append("all-courses", "CourseDefined", {"course": course, "places": 5},
                         expected=store.read("all-courses")[1])
        data, version = decide(store, "course-journaling", "ana", "journaling")
        store.append("course-journaling", "MemberEnrolled", data, expected=version)

        print("one stream per course: ana enrols in sleep and in running at the same time")
        first = decide(store, "course-sleep", "ana", "sleep")
        second = decide(store, "course-running", "ana", "running")
        for stream, (data, version) in (("course-sleep", first), ("course-running", second)):
            stored = store.append(stream, "MemberEnrolled", data, expected=version)
            print(f"  {stream:<16} stored as version {stored}")
        print(f"  ana now takes {len(store.enrolments_of('ana'))} courses; the limit is "
              f"{MAX_COURSES}")

        print("one stream for all courses: dan and eve enrol in different courses at once")
        first = decide(store, "all-courses", "dan", "sleep")
        second = decide(store, "all-courses", "eve", "running")
        for name, (data, version) in (("dan", first), ("eve", second)):
            try:
                stored = store.append("all-courses", "MemberEnrolled", data, expected=version)
                print(f"  {name}: stored as version {stored}")
            except VersionConflictError as error:
                print(f"  {name}: {error}")


if __name__ == "__main__":
    main()
