"""Performance tests that never flake: count queries, time only in benchmarks.

The evening reflection reads a day's entries, their moods and the writer's
goal from SQLite. A correct builder needs three queries however many entries
there are; the deliberately broken one asks for each entry's moods in its
own query, the N+1 pattern, which is fast on a laptop with three entries and
slow in production with three hundred over a network. Timing cannot catch it
reliably in a test (machines differ, neighbours are noisy); counting can:
:class:`QueryCounter` uses SQLite's trace callback, and
``test_a_reflection_costs_the_same_number_of_queries_for_3_or_300_entries``
fails the broken builder on every machine.

Speed is still measured, by ``pytest-benchmark``:
``test_building_a_reflection_for_300_entries`` takes its ``benchmark``
fixture, so ``pytest --benchmark-only thisfile.py`` times it and
``pytest --benchmark-disable`` runs it once as a plain test, which is how CI
should run it. ``main()`` counts queries for both builders.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE entries (id INTEGER PRIMARY KEY, user TEXT, day TEXT, text TEXT);
CREATE TABLE moods (entry_id INTEGER REFERENCES entries(id), mood TEXT);
CREATE TABLE goals (user TEXT PRIMARY KEY, title TEXT, target_km REAL, total_km REAL);
CREATE INDEX moods_by_entry ON moods (entry_id);
CREATE INDEX entries_by_day ON entries (user, day);
"""
MOODS = ("proud", "tired", "calm")


def diary(entries: int) -> sqlite3.Connection:
    """An in-memory database with ``entries`` entries by ana on one day, two moods each."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO goals VALUES ('ana', 'Run 10 km this week', 10, 6)")
    for n in range(entries):
        conn.execute("INSERT INTO entries VALUES (?, 'ana', '2025-03-14', ?)", (n, f"entry {n}"))
        conn.executemany("INSERT INTO moods VALUES (?, ?)",
                         [(n, MOODS[n % 3]), (n, MOODS[(n + 1) % 3])])
    return conn


# --8<-- [start:counter]
class QueryCounter:
    """Counts the statements a connection runs while it is active."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @contextmanager
    def watching(self, conn: sqlite3.Connection) -> Iterator[QueryCounter]:
        conn.set_trace_callback(self.statements.append)
        try:
            yield self
        finally:
            conn.set_trace_callback(None)

    @property
    def queries(self) -> int:
        return sum(s.lstrip().upper().startswith("SELECT") for s in self.statements)
# --8<-- [end:counter]


# --8<-- [start:builders]
class ReflectionBuilder:
    """Three queries for any number of entries: entries, all their moods, the goal."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def moods(self, user: str, day: str, entry_ids: list[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {i: [] for i in entry_ids}
        rows = self.conn.execute(
            "SELECT m.entry_id, m.mood FROM moods m JOIN entries e ON e.id = m.entry_id "
            "WHERE e.user = ? AND e.day = ? ORDER BY m.rowid", (user, day))
        for entry_id, mood in rows:
            found[entry_id].append(mood)
        return found

    def build(self, user: str, day: str) -> str:
        ids = [i for (i,) in self.conn.execute(
            "SELECT id FROM entries WHERE user = ? AND day = ? ORDER BY id", (user, day))]
        moods = self.moods(user, day, ids)
        title, target, total = self.conn.execute(
            "SELECT title, target_km, total_km FROM goals WHERE user = ?", (user,)).fetchone()
        counts = {mood: sum(mood in m for m in moods.values()) for mood in MOODS}
        felt = ", ".join(f"{mood} {n}x" for mood, n in counts.items() if n)
        return (f"{day}: {len(ids)} entries; felt {felt or 'nothing noted'}; "
                f"{title}: {total:g} of {target:g} km")


class ReflectionBuilderWithNPlusOne(ReflectionBuilder):
    """Deliberately broken: one query per entry for its moods."""

    def moods(self, user: str, day: str, entry_ids: list[int]) -> dict[int, list[str]]:
        return {i: [m for (m,) in self.conn.execute(
            "SELECT mood FROM moods WHERE entry_id = ? ORDER BY rowid", (i,))]
            for i in entry_ids}
# --8<-- [end:builders]


def queries_for(builder: type[ReflectionBuilder], entries: int) -> int:
    conn = diary(entries)
    with QueryCounter().watching(conn) as counter:
        builder(conn).build("ana", "2025-03-14")
    return counter.queries


# --8<-- [start:tests]
def test_a_reflection_costs_the_same_number_of_queries_for_3_or_300_entries(
        builder=ReflectionBuilder):
    few, many = queries_for(builder, 3), queries_for(builder, 300)
    assert few == many, f"3 entries cost {few} queries, 300 entries cost {many}"


def test_the_reflection_counts_moods_and_reports_the_goal(builder=ReflectionBuilder):
    assert builder(diary(3)).build("ana", "2025-03-14") == (
        "2025-03-14: 3 entries; felt proud 2x, tired 2x, calm 2x; Run 10 km this week: 6 of 10 km")


def test_building_a_reflection_for_300_entries(benchmark, builder=ReflectionBuilder):
    conn = diary(300)
    text = benchmark(builder(conn).build, "ana", "2025-03-14")
    assert text.startswith("2025-03-14: 300 entries; felt proud 200x")
# --8<-- [end:tests]


def run_once(function: Callable[..., Any], *args: Any) -> Any:
    """What the ``benchmark`` fixture does under ``--benchmark-disable``: call it once."""
    return function(*args)


TESTS = (test_a_reflection_costs_the_same_number_of_queries_for_3_or_300_entries,
         test_the_reflection_counts_moods_and_reports_the_goal,
         test_building_a_reflection_for_300_entries)


def run_tests(builder: type[ReflectionBuilder]) -> list[str]:
    """Run the page's tests against ``builder``; one line per failure."""
    failures = []
    for test in TESTS:
        try:
            if test is test_building_a_reflection_for_300_entries:
                test(run_once, builder)
            else:
                test(builder)
        except AssertionError as failure:
            failures.append(f"{test.__name__}: {failure}")
    return failures


def main() -> None:
    builders = (ReflectionBuilder, ReflectionBuilderWithNPlusOne)
    print(f"{'entries':>7}" + "".join(f"{b.__name__:>31}" for b in builders))
    for entries in (3, 30, 300):
        print(f"{entries:>7}" + "".join(f"{queries_for(b, entries):>23} queries" for b in builders))
    for builder in builders:
        failures = run_tests(builder)
        print(f"{builder.__name__}: {len(TESTS) - len(failures)} passed"
              + "".join(f"\n  caught by {line}" for line in failures))


if __name__ == "__main__":
    main()
