"""Fakes versus mocks: which suite fails which system, and the fake's own behaviour."""

from __future__ import annotations

import pytest

from snippets.testing.unit_testing_fakes_vs_mocks import (
    ANA,
    BEN,
    FAKE_TESTS,
    MOCK_TESTS,
    GoalNotFound,
    InMemoryGoalRepository,
    ProgressLogger,
    ProgressLoggerWithSwappedIds,
    RefactoredProgressLogger,
    main,
    run_logged,
    run_suite,
)


@pytest.mark.parametrize("page_test", FAKE_TESTS + MOCK_TESTS, ids=lambda t: t.__name__)
def test_every_test_on_the_page_passes_against_the_logger(page_test):
    page_test(ProgressLogger)


def test_the_fake_suite_catches_the_swapped_ids_that_the_mocks_miss():
    assert run_suite(MOCK_TESTS, ProgressLoggerWithSwappedIds) == []
    caught = run_suite(FAKE_TESTS, ProgressLoggerWithSwappedIds)
    assert len(caught) == 3
    assert all("GoalNotFound: no goal 'ana' for user 'run-10k'" in line for line in caught)


def test_the_mock_suite_fails_a_refactor_that_the_fake_suite_accepts():
    assert run_suite(FAKE_TESTS, RefactoredProgressLogger) == []
    alarms = run_suite(MOCK_TESTS, RefactoredProgressLogger)
    assert alarms[0] == ("test_a_run_adds_to_the_goal_with_mocks: AssertionError: "
                         "Expected 'save' to be called once. Called 0 times.")
    assert len(alarms) == 3


def test_the_refactor_really_behaves_like_the_original():
    for logger in (ProgressLogger, RefactoredProgressLogger):
        goals = InMemoryGoalRepository(ANA, BEN)
        updated = logger(goals).on_run_logged(run_logged("ben", 4.5))
        assert updated == goals.get("ben", "run-10k") == BEN.__class__("ben", "run-10k", 10.0, 4.5)
        assert goals.get("ana", "run-10k") == ANA


def test_the_fake_refuses_an_unknown_goal_like_the_real_repository_would_and_keeps_the_rest():
    goals = InMemoryGoalRepository(ANA)
    with pytest.raises(GoalNotFound, match="no goal 'swim-1k' for user 'ana'"):
        goals.add_progress("ana", "swim-1k", 1.0)
    assert goals.get("ana", "run-10k") == ANA


def test_the_demo_prints_the_matrix(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["ProgressLogger", "3", "pass", "3", "pass"]
    assert lines[2].split() == ["RefactoredProgressLogger", "3", "pass", "3", "of", "3", "fail"]
    assert lines[3].split() == ["ProgressLoggerWithSwappedIds", "3", "of", "3", "fail", "3", "pass"]
