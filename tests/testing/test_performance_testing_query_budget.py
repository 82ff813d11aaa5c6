"""Query budgets catch the N+1 builder on any machine; pytest-benchmark times the good one."""

from __future__ import annotations

import pytest

from snippets.testing.performance_testing_query_budget import (
    TESTS,
    QueryCounter,
    ReflectionBuilder,
    ReflectionBuilderWithNPlusOne,
    diary,
    main,
    queries_for,
    run_once,
    run_tests,
)
from tests.testing.support import pytest_as_reader


@pytest.mark.parametrize("page_test", TESTS[:2], ids=lambda t: t.__name__)
def test_the_page_tests_pass_against_the_three_query_builder(page_test):
    page_test(ReflectionBuilder)


def test_the_page_benchmark_checks_its_result_when_called_once():
    TESTS[2](run_once, ReflectionBuilder)


def test_the_n_plus_one_builder_is_caught_by_the_query_budget_alone():
    assert run_tests(ReflectionBuilderWithNPlusOne) == [
        ("test_a_reflection_costs_the_same_number_of_queries_for_3_or_300_entries: "
         "3 entries cost 5 queries, 300 entries cost 302")]
    assert run_tests(ReflectionBuilder) == []


@pytest.mark.parametrize("entries", [0, 1, 7, 120])
def test_both_builders_write_the_same_reflection_and_only_the_query_count_differs(entries):
    good, bad = (b(diary(entries)).build("ana", "2025-03-14")
                 for b in (ReflectionBuilder, ReflectionBuilderWithNPlusOne))
    assert good == bad
    assert queries_for(ReflectionBuilder, entries) == 3
    assert queries_for(ReflectionBuilderWithNPlusOne, entries) == entries + 2


def test_a_day_without_entries_says_nothing_was_noted():
    assert ReflectionBuilder(diary(0)).build("ana", "2025-03-14") == (
        "2025-03-14: 0 entries; felt nothing noted; Run 10 km this week: 6 of 10 km")


def test_the_counter_counts_only_reads_and_stops_watching_on_exit():
    conn = diary(1)
    counter = QueryCounter()
    with counter.watching(conn):
        conn.execute("SELECT 1").fetchall()
        conn.execute("INSERT INTO moods VALUES (0, 'calm')")
        conn.execute("  select count(*) from moods").fetchall()
    conn.execute("SELECT 2").fetchall()
    assert counter.queries == 2 and len(counter.statements) == 3


def test_a_reader_can_time_the_benchmark_with_benchmark_only():
    outcomes = pytest_as_reader("performance_testing_query_budget.py",
                                args=("--benchmark-only", "--benchmark-min-rounds=3",
                                      "--benchmark-max-time=0.01", "--benchmark-warmup=off"))
    assert outcomes == {"performance_testing_query_budget.py": {"passed": 1, "skipped": 2}}


def test_the_demo_prints_the_counts_and_the_catch(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["3", "3", "queries", "5", "queries"]
    assert lines[3].split() == ["300", "3", "queries", "302", "queries"]
    assert lines[4:6] == ["ReflectionBuilder: 3 passed", "ReflectionBuilderWithNPlusOne: 2 passed"]
