"""The envelope is immutable all the way down, and both CloudEvents modes round-trip through
the official CloudEvents SDK in both directions."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_design.event_structure_envelope import (
    Envelope,
    from_binary,
    from_structured,
    main,
    to_binary,
    to_structured,
)

WHEN = datetime(2026, 5, 4, 21, 30, tzinfo=UTC)


def written(**overrides) -> Envelope:
    fields = {"type": "coaching.entry.written", "source": "/journal", "id": "evt-1", "time": WHEN,
              "subject": "entry/e-42", "data": {"text": "Ran 5 km", "tags": ["run"],
                                                "mood": {"label": "good"}}}
    return Envelope(**{**fields, **overrides})


def test_assigning_any_attribute_fails():
    event = written()
    for name in ("type", "data", "correlation_id", "time"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, name, None)


def test_the_data_is_frozen_all_the_way_down_and_detached_from_the_callers_dict():
    data = {"text": "Ran 5 km", "tags": ["run"], "mood": {"label": "good"}}
    event = Envelope("coaching.entry.written", "/journal", data)
    data["text"], data["tags"][0], data["mood"]["label"] = "changed", "walk", "low"
    assert event.data == {"text": "Ran 5 km", "tags": ("run",), "mood": {"label": "good"}}
    with pytest.raises(TypeError):
        event.data["text"] = "edited"  # type: ignore[index]
    with pytest.raises(TypeError):
        event.data["mood"]["label"] = "low"  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.data["tags"].append("walk")  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        event.extensions["traceparent"] = "x"  # type: ignore[index]


def test_replace_makes_a_new_envelope_and_leaves_the_original_intact():
    event = written()
    moved = dataclasses.replace(event, subject="entry/e-43")
    assert (moved.subject, event.subject) == ("entry/e-43", "entry/e-42")
    assert moved.data == event.data


def test_a_first_event_correlates_to_itself_and_a_follow_up_carries_correlation_and_cause():
    first = written()
    second = first.caused("coaching.mood.noted", "/agents/mood", {"label": "calm"}, id="evt-2")
    third = second.caused("coaching.feedback.given", "/agents/mood", {"text": "Nice"},
                          id="evt-3", subject="feedback/f-1")
    assert first.correlation_id == "evt-1" and first.causation_id is None
    assert (second.correlation_id, second.causation_id, second.subject) == (
        "evt-1", "evt-1", "entry/e-42")
    assert (third.correlation_id, third.causation_id, third.subject) == (
        "evt-1", "evt-2", "feedback/f-1")


def test_ids_and_times_default_to_fresh_values():
    one, two = (Envelope("coaching.goal.set", "/goals", {}) for _ in range(2))
    assert one.id != two.id
    assert one.time.tzinfo is not None
    assert datetime.now(UTC) - one.time < timedelta(minutes=1)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"type": ""}, "type must be a non-empty string"),
    ({"source": None}, "source must be a non-empty string"),
    ({"id": 7}, "id must be a non-empty string"),
    ({"subject": ""}, "subject must be None or a non-empty string"),
    ({"specversion": "0.3"}, "specversion must be '1.0'"),
    ({"time": datetime(2026, 5, 4, 21, 30)}, "time must be a timezone-aware datetime"),
    ({"time": "2026-05-04T21:30:00Z"}, "time must be a timezone-aware datetime"),
    ({"data": ["not", "a", "mapping"]}, "data must be a mapping, got list"),
    ({"extensions": {"trace-parent": "x"}}, "extension name 'trace-parent' must be lowercase"),
    ({"extensions": {"subject": "x"}}, "extension name 'subject'"),
    ({"extensions": {"traceparent": 5}}, "extension 'traceparent' must be a string"),
])
def test_an_invalid_envelope_is_refused_with_the_field_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        written(**overrides)


# -- CloudEvents, through the official SDK -----------------------------------------------------

def sdk_structured(headers: dict, body: bytes) -> CloudEvent:
    return http.from_structured(http.HTTPMessage(headers, body), JSONFormat())


def test_structured_mode_is_read_by_the_sdk_and_what_the_sdk_writes_reads_back_equal():
    event = written(dataschema="urn:coaching:schema:coaching.entry.written:3",
                    extensions={"traceparent": "00-4bf92f-00f067-01"})
    headers, body = to_structured(event)
    assert headers == {"content-type": "application/cloudevents+json"}
    parsed = sdk_structured(headers, body)
    assert parsed.get_attributes() == {
        "id": "evt-1", "source": "/journal", "type": "coaching.entry.written",
        "specversion": "1.0", "subject": "entry/e-42", "time": WHEN,
        "datacontenttype": "application/json",
        "dataschema": "urn:coaching:schema:coaching.entry.written:3",
        "correlationid": "evt-1", "traceparent": "00-4bf92f-00f067-01"}
    assert parsed.get_data() == {"text": "Ran 5 km", "tags": ["run"], "mood": {"label": "good"}}
    assert from_structured(http.to_structured(parsed, JSONFormat()).body) == event


def test_binary_mode_is_read_by_the_sdk_and_what_the_sdk_writes_reads_back_equal():
    event = written().caused("coaching.mood.noted", "/agents/mood", {"label": "calm"},
                             id="evt-2", time=WHEN)
    headers, body = to_binary(event)
    assert headers["ce-causationid"] == "evt-1" and headers["content-type"] == "application/json"
    parsed = http.from_binary(http.HTTPMessage(headers, body), JSONFormat())
    assert parsed.get_extension("correlationid") == "evt-1"
    assert parsed.get_extension("causationid") == "evt-1"
    assert parsed.get_data() == {"label": "calm"}
    message = http.to_binary(parsed, JSONFormat())
    assert from_binary(message.headers, message.body) == event


def test_an_event_made_by_the_sdk_reads_into_an_equal_envelope_in_both_modes():
    made = CloudEvent({"id": "x-1", "source": "/voice", "type": "coaching.entry.written",
                       "time": WHEN, "subject": "entry/e-7", "correlationid": "c-1"},
                      {"text": "dictated"})
    expected = Envelope("coaching.entry.written", "/voice", {"text": "dictated"}, id="x-1",
                        time=WHEN, subject="entry/e-7", correlation_id="c-1")
    structured = http.to_structured(made, JSONFormat())
    binary = http.to_binary(made, JSONFormat())
    assert from_structured(structured.body) == expected
    assert from_binary(binary.headers, binary.body) == expected


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)
ENVELOPES = st.builds(
    Envelope,
    type=st.text(min_size=1), source=st.text(min_size=1), id=st.text(min_size=1),
    data=st.dictionaries(st.text(), JSON_VALUES, max_size=4),
    subject=st.none() | st.text(min_size=1),
    time=st.datetimes(timezones=st.just(UTC)) | st.datetimes(
        timezones=st.sampled_from([timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))])),
    correlation_id=st.text(), causation_id=st.none() | st.text(min_size=1),
    extensions=st.dictionaries(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True).filter(
        lambda n: n not in {"id", "source", "type", "specversion", "subject", "time",
                            "datacontenttype", "dataschema", "correlationid", "causationid",
                            "data"}), st.text(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(ENVELOPES)
def test_any_envelope_survives_a_round_trip_through_the_sdk_in_both_modes(event):
    parsed = sdk_structured(*to_structured(event))
    assert from_structured(http.to_structured(parsed, JSONFormat()).body) == event
    headers, body = to_binary(event)
    assert all(value.isascii() and " " not in value for value in headers.values())
    parsed = http.from_binary(http.HTTPMessage(headers, body), JSONFormat())
    message = http.to_binary(parsed, JSONFormat())
    assert from_binary(message.headers, message.body) == event


# -- malformed input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"id": "a", "source": "/j"}', "missing required attribute\\(s\\) type, specversion"),
    (json.dumps({"id": "a", "source": "/j", "type": "t", "specversion": "1.0",
                 "time": "last night"}).encode(), "time is not an RFC 3339 timestamp"),
    (json.dumps({"id": "a", "source": "/j", "type": "t", "specversion": "1.0",
                 "time": 1714857000}).encode(), "time is not an RFC 3339 timestamp"),
    (json.dumps({"id": "a", "source": "/j", "type": "t", "specversion": "1.0",
                 "data_base64": "AAEC"}).encode(), "data_base64 \\(binary data\\) is not supported"),
    (json.dumps({"id": "a", "source": "/j", "type": "t", "specversion": "1.0",
                 "data": "text"}).encode(), "data must be a mapping, got str"),
    (json.dumps({"id": "a", "source": "/j", "type": "t", "specversion": "2.0"}).encode(),
     "specversion must be '1.0'"),
])
def test_a_malformed_structured_event_is_refused_with_the_reason(body, message):
    with pytest.raises(ValueError, match=message):
        from_structured(body)


def test_binary_headers_are_matched_case_insensitively_and_missing_ones_are_named():
    headers, body = to_binary(written())
    shouted = {name.upper(): value for name, value in headers.items()}
    assert from_binary(shouted, body) == written()
    del shouted["CE-ID"]
    with pytest.raises(ValueError, match="missing required attribute\\(s\\) id"):
        from_binary(shouted, body)
    with pytest.raises(ValueError, match="body is not JSON"):
        from_binary(headers, b"{broken")
    assert from_binary({k: v for k, v in headers.items()}, b"").data == {}


def test_the_demo_shows_causation_refused_mutations_and_both_modes(capsys):
    main()
    out = capsys.readouterr().out
    assert "coaching.mood.noted: correlation evt-1, caused by evt-1" in out
    assert out.count("mutation refused:") == 3
    assert "ce-dataschema: urn:coaching:schema:coaching.entry.written:3" in out
    assert "both modes read back to an equal envelope" in out
