"""Tight coupling: call-back consumers fail with their producer; state-carrying events do not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_tight_coupling import (
    CallbackInsights,
    CarriedInsights,
    Journal,
    deliver,
    main,
)


def test_the_demo_fails_only_the_call_back_consumer_in_an_outage_and_a_refactor(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        ("journal up    : callback {'ana': 5} (0 failed, 3 calls to the journal) | carried"
        " {'ana': 5} (0 failed)"),
        ("journal down  : callback {} (3 failed, 3 calls to the journal) | carried"
        " {'ana': 5} (0 failed)"),
        ("                first failure: e-1: ConnectionError: journal unavailable"
        " (deploy in progress)"),
        ("column renamed: callback {} (3 failed, 3 calls to the journal) | carried"
        " {'ana': 5} (0 failed)"),
        "                first failure: e-1: KeyError: 'mood_score'",
    ]


entries = st.lists(st.tuples(st.sampled_from(["ana", "ben"]),
                             st.lists(st.sampled_from(["ran", "slept", "5", "km"]), min_size=1,
                                      max_size=6),
                             st.integers(1, 5)), min_size=1, max_size=15)


def journal_with(rows) -> Journal:
    journal = Journal()
    for n, (user, words, mood) in enumerate(rows):
        journal.write(f"e-{n}", user, " ".join(words), mood)
    return journal


def expected(rows) -> dict[str, int]:
    totals: dict[str, int] = {}
    for user, words, mood in rows:
        if mood >= 3:
            totals[user] = totals.get(user, 0) + len(words)
    return totals


@settings(max_examples=100, deadline=None)
@given(entries)
def test_both_consumers_agree_while_the_journal_is_up_but_only_one_calls_it(rows):
    journal = journal_with(rows)
    broken, fixed = CallbackInsights(journal), CarriedInsights()
    assert deliver(broken, [journal.thin_event(i) for i in journal.rows]) == []
    calls = journal.calls
    assert deliver(fixed, [journal.carried_event(i) for i in journal.rows]) == []
    assert broken.words == fixed.words == expected(rows)
    assert calls == len(rows) and journal.calls == calls  # the fixed one made no call


@settings(max_examples=100, deadline=None)
@given(entries)
def test_broken_every_event_fails_while_the_journal_is_down(rows):
    journal = journal_with(rows)
    thin = [journal.thin_event(i) for i in journal.rows]
    journal.up = False
    broken = CallbackInsights(journal)
    assert len(deliver(broken, thin)) == len(rows) and broken.words == {}


@settings(max_examples=100, deadline=None)
@given(entries)
def test_fixed_the_journal_being_down_changes_nothing(rows):
    journal = journal_with(rows)
    carried = [journal.carried_event(i) for i in journal.rows]
    journal.up = False
    fixed = CarriedInsights()
    assert deliver(fixed, carried) == [] and fixed.words == expected(rows)


def test_an_internal_rename_breaks_the_call_back_consumer_and_not_the_contract():
    rows = [("ana", ["ran", "5", "km"], 4)]
    journal = journal_with(rows)
    journal.rename_mood_column()
    assert deliver(CallbackInsights(journal), [journal.thin_event("e-0")]) == [
        "e-0: KeyError: 'mood_score'"]
    event = journal.carried_event("e-0")  # built after the refactor, same contract
    assert event == {"type": "entry.written", "version": 1, "entry_id": "e-0", "user": "ana",
                     "mood": 4, "words": 3}
    fixed = CarriedInsights()
    fixed.handle(event)
    assert fixed.words == {"ana": 3}


def test_an_event_missing_contract_fields_is_refused_by_name_and_counts_stay():
    fixed = CarriedInsights()
    fixed.handle({"entry_id": "e-1", "user": "ana", "mood": 4, "words": 3})
    with pytest.raises(ValueError, match=r"entry.written 'e-2' lacks \['mood', 'words'\]"):
        fixed.handle({"entry_id": "e-2", "user": "ana"})
    assert fixed.words == {"ana": 3}
