"""Consumer-driven contracts: which producer changes pass, which fail, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.testing.integration_testing_contracts import (
    CONTRACTS,
    TESTS,
    Contract,
    Entry,
    JournalProducer,
    JournalProducerDropsTags,
    JournalProducerRenamesMood,
    main,
)

MOOD = CONTRACTS[1]


@pytest.mark.parametrize("page_test", TESTS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("producer", [JournalProducer, JournalProducerDropsTags])
def test_today_and_the_compatible_change_satisfy_every_consumer(page_test, producer):
    page_test(producer)


def test_renaming_mood_fails_the_mood_agent_and_only_it():
    failures = {}
    for test in TESTS:
        try:
            test(JournalProducerRenamesMood)
        except AssertionError as error:
            failures[test.__name__] = str(error)
    assert failures == {"test_the_mood_agents_contract_holds":
                        "mood-agent reads 'mood' (str or null): missing"}


@pytest.mark.parametrize(("message", "problem"), [
    ({"type": "journal.entry_deleted"}, "expects type 'journal.entry_written', got 'journal.entry_deleted'"),
    ({}, "got None"),
    ({"type": "journal.entry_written", "entry_id": 7, "mood": None,
      "written_at": "2025-03-14T21:30:00+01:00"}, "'entry_id' (str): got 7"),
    ({"type": "journal.entry_written", "entry_id": "e1", "mood": 3,
      "written_at": "2025-03-14T21:30:00+01:00"}, "'mood' (str or null): got 3"),
    ({"type": "journal.entry_written", "entry_id": "e1", "mood": None,
      "written_at": "2025-03-14T21:30:00"}, "'written_at' (ISO 8601 time with offset): got"),
    ({"type": "journal.entry_written", "entry_id": "e1", "mood": None,
      "written_at": "yesterday"}, "got 'yesterday'"),
    ({"type": "journal.entry_written", "entry_id": "e1", "mood": None,
      "written_at": 1741984200}, "got 1741984200"),
])
def test_each_broken_field_is_named_with_what_was_found(message, problem):
    problems = MOOD.problems(message)
    assert len(problems) == 1 and problem in problems[0], problems


def test_a_contract_lists_every_problem_at_once():
    contract = Contract("c", "t", {"a": "str", "b": "str"})
    assert contract.problems({"type": "t"}) == ["c reads 'a' (str): missing",
                                                "c reads 'b' (str): missing"]


entries = st.builds(
    Entry,
    entry_id=st.text(min_size=1, max_size=8),
    user_id=st.text(min_size=1, max_size=8),
    written_at=st.datetimes(timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-7, minutes=-30))])),
    text=st.text(max_size=40),
    mood=st.none() | st.text(max_size=10),
    tags=st.lists(st.text(max_size=5), max_size=3).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(entries)
def test_todays_producer_satisfies_every_contract_for_any_entry(entry):
    for contract in CONTRACTS:
        assert contract.problems(JournalProducer.entry_written(entry)) == []


def test_a_naive_timestamp_from_the_producer_would_be_caught():
    naive = Entry("e1", "ana", datetime(2025, 3, 14, 21, 30), "Ran")
    assert "ISO 8601 time with offset" in MOOD.problems(JournalProducer.entry_written(naive))[0]


def test_the_demo_shows_one_broken_cell(capsys):
    main()
    out = capsys.readouterr().out
    assert out.count("BROKEN") == 1
    assert "JournalProducerDropsTags    holds               holds               holds" in out
    assert "  JournalProducerRenamesMood: mood-agent reads 'mood' (str or null): missing" in out
