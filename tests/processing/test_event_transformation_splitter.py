"""Tests of the splitter: stable ids, sequencing, partial rejection, whole-batch refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_transformation_splitter import (
    MAX_PARTS,
    BatchError,
    EntryWritten,
    Rejected,
    main,
    split,
)

good = st.fixed_dictionaries({"day": st.dates().map(lambda d: d.isoformat()),
                              "text": st.text(max_size=20)})
bad = st.none() | st.integers() | st.fixed_dictionaries({"day": st.text(max_size=4)}) | st.just(
    {"day": "2024-06-03", "text": 7})


@settings(max_examples=300, deadline=None)
@given(st.text("abc-123", min_size=1, max_size=8), st.lists(good | bad, max_size=30))
def test_splitting_is_deterministic_complete_and_gives_unique_ids(batch_id, items):
    batch = {"batch_id": batch_id, "user_id": "u-ana", "entries": items}
    parts, rejected = split(batch)
    assert split(batch) == (parts, rejected)  # a redelivery gives the very same ids
    assert len(parts) + len(rejected) == len(items)
    assert sorted([p.part[0] for p in parts] + [r.index for r in rejected]) == list(
        range(1, len(items) + 1))
    assert len({p.message_id for p in parts}) == len(parts)
    assert all(p.correlation_id == batch_id and p.part[1] == len(items) for p in parts)
    assert all(p.message_id == f"{batch_id}/{p.part[0]}" for p in parts)


def test_a_bad_entry_is_rejected_with_its_index_and_its_siblings_still_go_out():
    parts, rejected = split({"batch_id": "imp-1", "user_id": "u", "entries": [
        {"day": "2024-06-03", "text": "ok"}, "junk", {"day": "2024-06-05"}]})
    assert parts == [EntryWritten("imp-1/1", "imp-1", (1, 3), "u", "2024-06-03", "ok")]
    assert rejected == [Rejected("imp-1", 2, "not an object: str"),
                        Rejected("imp-1", 3, "needs 'day' (YYYY-MM-DD) and 'text'")]


@pytest.mark.parametrize(("batch", "message"), [
    ({"user_id": "u", "entries": []}, "batch_id must be a non-empty string"),
    ({"batch_id": "a/b", "user_id": "u", "entries": []}, "without '/'"),
    ({"batch_id": "b", "entries": []}, "batch b: user_id must be a non-empty string"),
    ({"batch_id": "b", "user_id": "u", "entries": "x"}, "batch b: entries must be a list"),
    ({"batch_id": "b", "user_id": "u", "entries": [{}] * (MAX_PARTS + 1)},
     f"{MAX_PARTS + 1} entries, more than {MAX_PARTS}"),
])
def test_an_unusable_batch_is_refused_whole_before_anything_is_emitted(batch, message):
    with pytest.raises(BatchError, match=message):
        split(batch)


def test_the_demo_shows_that_a_redelivered_batch_adds_nothing_new(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("first delivery: 3 parts, 1 rejected, new to the inbox: "
                      "['imp-7/1', 'imp-7/2', 'imp-7/4']")
    assert out[1] == "redelivery    : 3 parts, 1 rejected, new to the inbox: []"
    assert out[-1].startswith("  rejected: Rejected(batch_id='imp-7', index=3")
