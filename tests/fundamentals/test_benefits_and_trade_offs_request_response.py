"""Direct calls: consistent at once, but one down service fails the save half-way."""

from __future__ import annotations

import pytest

from snippets.fundamentals.benefits_and_trade_offs_request_response import (
    Coach,
    Goals,
    Journal,
    Reflections,
    ServiceUnavailable,
    main,
)


def make_journal() -> Journal:
    return Journal(Goals(), Coach(), Reflections())


def test_with_every_service_up_the_save_is_consistent_as_soon_as_it_returns():
    journal = make_journal()
    assert journal.save_entry("Ran 3 km", goal="run 5 km") == 1
    assert journal.goals.progress == {"run 5 km": 1}
    assert journal.coach.notes == ["noticed: Ran 3 km"]
    assert journal.reflections.today == ["Ran 3 km"]


def test_one_service_down_fails_the_save_and_leaves_the_others_out_of_step():
    journal = make_journal()
    journal.coach.up = False
    with pytest.raises(ServiceUnavailable, match="coach is not answering"):
        journal.save_entry("Skipped the run", goal="run 5 km")
    assert journal.entries == []  # the user's entry is not saved
    assert journal.goals.progress == {"run 5 km": 1}  # yet a session was counted
    assert journal.reflections.today == []  # and the reflection never heard of it


def test_the_demo_prints_the_partial_failure(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "entry 1 saved; goal progress at once: 1",
        "entry 2 refused to the user: coach is not answering",
        "entries saved: 1",
        "goal sessions counted: 2  <- includes the refused entry",
        "entries in tonight's reflection: 1",
    ]
