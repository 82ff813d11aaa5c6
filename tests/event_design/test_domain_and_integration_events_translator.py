"""The boundary between domain and integration events: the public contract does not move when
the domain model does, and nothing private or unknown crosses it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from snippets.event_design.domain_and_integration_events_translator import (
    CONTRACTS,
    PRIVATE,
    ContractViolation,
    DraftAutosaved,
    EntryDeleted,
    EntryWritten,
    EntryWrittenV1,
    JournalBoundary,
    TranslationError,
    main,
)

KEY = b"test key"
SCORE_TO_NAME = {1: "sad", 2: "tired", 3: "neutral", 4: "calm", 5: "happy"}
SECRET = "SECRET-"  # a marker no public field can contain by accident

zones = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.builds(lambda days, zone: datetime(2025, 1, 1, tzinfo=zone) + timedelta(minutes=days),
                    st.integers(0, 500_000), zones)
words = st.lists(st.text("abcdefghij ÄéΩ", min_size=1, max_size=8), min_size=1, max_size=12)
internal_ids = st.integers(10**6, 10**9)


@st.composite
def same_entry_in_both_models(draw):
    """An entry as the old domain model wrote it, and the same entry in the current model."""
    paragraphs = tuple(SECRET + " ".join(p) for p in draw(st.lists(words, min_size=1,
                                                                   max_size=4)))
    score = draw(st.one_of(st.none(), st.integers(1, 5)))
    common = {"event_id": draw(st.uuids()).hex, "entry_id": draw(internal_ids),
              "author_id": draw(internal_ids), "written_at": draw(moments),
              "private_note": draw(st.one_of(st.none(), st.text(min_size=1).map(SECRET.__add__)))}
    old = EntryWrittenV1(text=" ".join(paragraphs), mood_score=score, **common)
    new = EntryWritten(paragraphs=paragraphs, mood=SCORE_TO_NAME.get(score),
                       tags=tuple(draw(st.lists(st.text(min_size=1), max_size=3))), **common)
    return old, new


@settings(max_examples=50)
@given(same_entry_in_both_models())
def test_the_integration_event_stays_the_same_when_the_domain_event_is_refactored(pair):
    old, new = pair
    boundary = JournalBoundary(KEY)
    assert boundary.translate(old) == boundary.translate(new)


@settings(max_examples=50)
@given(same_entry_in_both_models())
def test_every_published_event_fits_its_contract_and_carries_nothing_private(pair):
    event = JournalBoundary(KEY).translate(pair[1])
    assert set(event) == {"id", "type", "dataschema", "time", "data"}
    assert not list(Draft202012Validator(CONTRACTS[event["type"]]).iter_errors(event["data"]))
    wire = json.dumps(event, ensure_ascii=False)
    assert SECRET not in wire  # no text, no private note
    assert str(pair[1].entry_id) not in wire and str(pair[1].author_id) not in wire
    assert event["data"]["written_on"] == pair[1].written_at.date().isoformat()  # member's day


def make_unknown(name: str, fields: dict) -> object:
    cls = dataclasses.make_dataclass(name, [("event_id", str)] + [(k, str) for k in fields])
    return cls("u-1", **{k: SECRET + v for k, v in fields.items()})


@settings(max_examples=50)
@given(st.from_regex(r"[A-Z][a-z]{2,8}(Pinned|Shared|Exported|Merged)", fullmatch=True),
       st.dictionaries(st.from_regex(r"[a-z]{3,8}", fullmatch=True), st.text(max_size=20),
                       max_size=4))
def test_a_domain_event_with_no_translation_is_held_and_never_published(name, fields):
    unknown = make_unknown(name, fields)
    known = EntryDeleted("d-1", 10**6, 10**6 + 1, datetime(2025, 3, 3, tzinfo=UTC))
    outcome = JournalBoundary(KEY).publish([unknown, known])
    assert [e["type"] for e in outcome.published] == ["journal.entry.deleted"]
    assert outcome.held == [(f"{name} u-1: no public translation for this type; "
                             "write one, or list it in PRIVATE")]
    assert SECRET not in json.dumps(outcome.published)


def test_private_domain_events_are_kept_inside_by_name():
    outcome = JournalBoundary(KEY).publish([DraftAutosaved("p-1", 1, 2, SECRET + "draft")])
    assert outcome.private == ["DraftAutosaved"] and outcome.published == outcome.held == []
    assert {"DraftAutosaved", "MoodRescored"} <= PRIVATE


def test_the_published_contracts_are_exactly_the_reviewed_ones():
    """A change to a public schema must be a new version, reviewed with its consumers.
    If this fails, you changed the contract: publish a new version beside this one instead."""
    fingerprints = {t: hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]
                    for t, s in CONTRACTS.items()}
    assert fingerprints == {"journal.entry.written": "e47b8476b2943855",
                            "journal.entry.deleted": "d74b75614df1865d"}


class LeakyBoundary(JournalBoundary):
    """A translator with a well-meant extra field: the text, "for the coaching agent"."""

    def _written(self, event, words, mood):
        return {**super()._written(event, words, mood), "text": "Slept badly"}


def test_a_translation_that_adds_a_field_is_stopped_by_the_contract_before_it_is_sent():
    entry = EntryWritten("x-1", 1, 2, datetime(2025, 3, 3, tzinfo=UTC), ("Slept badly",),
                         mood=None)
    with pytest.raises(ContractViolation, match=r"journal.entry.written from x-1 breaks its "
                                                r"contract: .*'text' was unexpected"):
        LeakyBoundary(KEY).publish([entry])


def test_public_references_are_stable_keyed_and_reveal_no_order():
    boundary = JournalBoundary(KEY)
    at = datetime(2025, 3, 3, tzinfo=UTC)
    first = [boundary.translate(EntryDeleted(f"d-{n}", n, 7, at)) for n in range(1000, 1020)]
    again = [boundary.translate(EntryDeleted(f"d-{n}", n, 7, at)) for n in range(1000, 1020)]
    assert first == again  # a redelivered domain event publishes the same id
    refs = [e["data"]["entry"] for e in first]
    assert len(set(refs)) == 20  # distinct...
    assert refs not in (sorted(refs), sorted(refs, reverse=True))  # ...and in no telling order
    other = JournalBoundary(b"another key").translate(EntryDeleted("d-1000", 1000, 7, at))
    assert other["data"]["entry"] != refs[0]


@pytest.mark.parametrize("event, reason", [
    (EntryWritten("b-1", 1, 2, datetime(2025, 3, 3), ("x",), mood=None),
     "EntryWritten b-1: written_at has no time zone"),
    (EntryWritten("b-2", 1, 2, datetime(2025, 3, 3, tzinfo=UTC), ("x",), mood="furious"),
     "EntryWritten b-2: mood 'furious' has no public meaning"),
    (EntryWrittenV1("b-3", 1, 2, datetime(2025, 3, 3, tzinfo=UTC), "x", mood_score=9),
     "EntryWrittenV1 b-3: mood 9 has no public meaning"),
])
def test_a_domain_event_the_contract_cannot_express_is_held_with_the_reason(event, reason):
    outcome = JournalBoundary(KEY).publish([event])
    assert outcome.published == [] and outcome.held == [reason]
    with pytest.raises(TranslationError, match=reason):
        JournalBoundary(KEY).translate(event)


def test_main_publishes_two_events_keeps_two_private_and_holds_two(capsys):
    main()
    out = capsys.readouterr().out
    assert out.count("published  ") == 2
    assert "private    ['DraftAutosaved', 'MoodRescored']" in out
    assert "held       EntryPinned e-104: no public translation for this type" in out
    assert "domain v1 and v2 of e-101 publish the same event: True" in out
    assert "internal ids, text or note on the wire: False" in out
