"""The stream-table join: the temporal join's answer does not depend on which side is read first;
the naive join's does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.processing.stream_processing_join import (
    Enriched,
    Entry,
    GoalChange,
    LatestJoin,
    TemporalJoin,
    main,
    run,
)

goals = st.sampled_from(["g1", "g2", "g3"])
changes = st.lists(st.builds(GoalChange, goals, st.integers(0, 1000),
                             st.text("abcdefgh ", min_size=1, max_size=8)), max_size=15).map(
    lambda items: sorted(items, key=lambda c: c.time))
entries = st.lists(st.builds(Entry, st.uuids().map(str), goals, st.integers(0, 1200)),
                   max_size=15)


def truth(all_changes: list[GoalChange], entry: Entry) -> str | None:
    """The title valid at the entry's time, with the whole history in hand."""
    valid = [c for c in all_changes if c.goal_id == entry.goal_id and c.time <= entry.time]
    return valid[-1].title if valid else None


@given(changes, entries, st.randoms())
def test_any_interleaving_of_table_and_stream_gives_the_title_valid_at_each_entry(
        table, stream, random):
    inputs, pending_changes, pending_entries = [], list(table), list(stream)
    while pending_changes or pending_entries:  # changes keep their order; entries do not
        if pending_changes and (not pending_entries or random.random() < 0.5):
            inputs.append(pending_changes.pop(0))
        else:
            inputs.append(pending_entries.pop(random.randrange(len(pending_entries))))
    join = TemporalJoin()
    out = run(join, inputs) + join.heartbeat(10_000)
    assert sorted(out) == sorted(Enriched(*e, truth(table, e)) for e in stream)


def test_the_naive_join_answers_differently_live_and_on_replay():
    rename, entry = GoalChange("g1", 200, "new title"), Entry("e1", "g1", 100)
    first = GoalChange("g1", 0, "old title")
    live = run(LatestJoin(), [first, entry, rename])
    replay = run(LatestJoin(), [first, rename, entry])
    assert live[0].title == "old title" and replay[0].title == "new title"
    temporal_live, temporal_replay = TemporalJoin(), TemporalJoin()
    assert run(temporal_live, [first, entry, rename]) == \
        run(temporal_replay, [first, rename, entry]) == [Enriched("e1", "g1", 100, "old title")]


def test_an_entry_waits_until_the_table_is_complete_past_its_time():
    join = TemporalJoin()
    assert join.on_change(GoalChange("g1", 0, "A")) == []
    assert join.on_entry(Entry("e2", "g1", 500)) == []
    assert join.on_entry(Entry("e1", "g1", 300)) == []
    assert join.heartbeat(300) == []  # a change at 300 may still come
    assert join.on_change(GoalChange("g1", 300, "B")) == []
    assert join.heartbeat(301) == [Enriched("e1", "g1", 300, "B")]
    assert join.heartbeat(10_000) == [Enriched("e2", "g1", 500, "B")]
    assert join.on_entry(Entry("e3", "g9", 50)) == [Enriched("e3", "g9", 50, None)]


def test_a_change_older_than_the_tables_watermark_is_refused_and_changes_nothing():
    join = TemporalJoin()
    join.on_change(GoalChange("g1", 100, "A"))
    join.heartbeat(400)
    with pytest.raises(ValueError, match=r"goal 'g1': change at 200 is older than the "
                                         r"table's watermark 400"):
        join.on_change(GoalChange("g1", 200, "B"))
    assert join.on_entry(Entry("e1", "g1", 250)) == [Enriched("e1", "g1", 250, "A")]


def test_main_prints_the_naive_join_disagreeing_with_itself_and_the_temporal_join_agreeing(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("e1 20:30 -> Write 3 evenings; e2 21:30 -> Write 3 evenings")
    assert lines[2].endswith("e1 20:30 -> Write 4 evenings; e2 21:30 -> Write 4 evenings")
    assert lines[1].split(": ", 1)[1] == lines[3].split(": ", 1)[1] == \
        "e1 20:30 -> Write 3 evenings; e2 21:30 -> Write 4 evenings"
