"""Tests of the normalizer: three formats give one Entry; hostile bodies are refused by name."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_transformation_normalizer import (
    LIMIT,
    Entry,
    NormalizationError,
    main,
    normalize,
)


def as_json(e: Entry) -> bytes:
    return json.dumps({"entryId": e.entry_id, "userId": e.user_id,
                       "writtenAt": e.written_at.isoformat(), "mood": e.mood,
                       "text": e.text}).encode()


def as_csv(e: Entry) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow([e.entry_id, e.user_id, e.written_at.isoformat(), e.mood, e.text])
    return out.getvalue().removesuffix("\r\n").encode()


def as_xml(e: Entry) -> bytes:
    root = ET.Element("entry", id=e.entry_id, user=e.user_id, at=e.written_at.isoformat())
    ET.SubElement(root, "mood").text = e.mood
    ET.SubElement(root, "text").text = e.text
    return ET.tostring(root)


# Text XML 1.0 can carry unchanged: no control characters, no lone CR, no surrogates.
safe_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from("\n\t"),
                    max_size=60)
ids = st.text("abcdefghij-_0123456789", min_size=1, max_size=12)
entries = st.builds(
    Entry, ids, ids,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                                            timezone(timedelta(hours=-5, minutes=-30))])),
    st.sampled_from(["low", "ok", "good"]), safe_text)


@settings(max_examples=300, deadline=None)
@given(entries)
def test_the_same_entry_in_json_csv_and_xml_normalizes_to_the_same_canonical_entry(entry):
    assert normalize("application/json", as_json(entry)) == entry
    assert normalize("text/csv; charset=utf-8", as_csv(entry)) == entry
    assert normalize("Application/XML", as_xml(entry)) == entry


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/x-protobuf", b"\x08", "unsupported content type 'application/x-protobuf'"),
    ("application/json", b'{"entryId": "e"', "json: not JSON"),
    ("application/json", b"[]", "json: expected an object, not list"),
    ("application/json", b"[" * 5000 + b"]" * 5000, "json: not JSON"),
    ("application/json", b'{"entryId": "e", "userId": "u", "writtenAt": "2024-06-10T07:00:00",'
                         b' "mood": "ok", "text": ""}', "json: 'written_at' has no time zone"),
    ("application/json", b'{"entryId": 1}', "json: 'entry_id' must be a non-empty string, not 1"),
    ("text/csv", b"e,u,2024-06-10T07:00:00+00:00,ok", "csv: expected one record of 5 fields"),
    ("text/csv", b"a,b,c,d,e\nf,g,h,i,j", "csv: expected one record of 5 fields, got [5, 5]"),
    ("text/csv", b"\xff,u,t,ok,x", "csv: unreadable"),
    ("text/csv", b"e,u,2024-06-10T07:00:00+00:00,furious,x", "csv: unknown mood 'furious'"),
    ("application/xml", b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "y">]><entry/>',
     "xml: DTDs and entities are refused"),
    ("application/xml", b"<entry id='e'", "xml: not well-formed"),
    ("application/xml", b"<note/>", "xml: root element must be <entry>, not <note>"),
    ("application/xml", b"<entry id='e' user='u' at='2024-06-10T07:00:00+00:00'/>",
     "xml: 'mood' must be a non-empty string, not None"),
    ("application/json", b" " * (LIMIT + 1), f"body of {LIMIT + 1} bytes exceeds"),
])
def test_hostile_or_broken_messages_are_refused_naming_format_and_problem(
        content_type, body, message):
    with pytest.raises(NormalizationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize(content_type, body)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["application/json", "text/csv", "application/xml"]),
       st.binary(max_size=300))
def test_random_bytes_in_any_format_give_an_entry_or_a_normalization_error(content_type, body):
    try:
        assert isinstance(normalize(content_type, body), Entry)
    except NormalizationError:
        pass


def test_the_demo_shows_one_entry_from_three_formats_and_three_refusals(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert len({line.split("->")[1] for line in out[:3]}) == 1
    assert [line.split("refused: ")[1].split(":")[0] for line in out[3:5]] == ["xml", "csv"]
    assert out[5].endswith("refused: unsupported content type 'application/x-protobuf'; "
                           "expected one of ['application/json', 'application/xml', 'text/csv']")
    assert out[-1] == "distinct canonical entries from the first three: 1"
