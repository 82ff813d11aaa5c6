"""Tests of selective consumers: what each rule matches, compile-time errors, decode costs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_filtering_predicates import (
    FIELDS,
    Event,
    Filter,
    FilterError,
    Subscriber,
    condition,
    entry,
    main,
)


@pytest.mark.parametrize(("rule", "value", "expected"), [
    ("fr", "fr", True), ("fr", "en", False), ("fr", None, False),
    (200, 200, True), (200, 200.0, False), (True, 1, False), (1, True, False),
    (["fr", "de"], "de", True), (["fr", "de"], "en", False),
    ({"prefix": "coaching.goal."}, "coaching.goal.set", True),
    ({"prefix": "coaching.goal."}, "coaching.goals", False),
    ({"prefix": "x"}, 7, False),
    ({"anything-but": ["de"]}, "fr", True), ({"anything-but": ["de"]}, "de", False),
    ({"anything-but": ["de"]}, None, False),
    ({"exists": True}, "", True), ({"exists": True}, None, False),
    ({"exists": False}, None, True),
    ({"numeric": [">=", 200]}, 200, True), ({"numeric": [">=", 200]}, 199.5, False),
    ({"numeric": [">", 0, "<", 10]}, 5, True), ({"numeric": [">", 0, "<=", 10]}, 11, False),
    ({"numeric": [">=", 200]}, "300", False), ({"numeric": ["<", 1]}, True, False),
    ([{"prefix": "a"}, {"numeric": ["<", 0]}], -1, True),
])
def test_each_rule_matches_exactly_what_it_says(rule, value, expected):
    assert condition("filter.x", rule)(value) is expected


@pytest.mark.parametrize(("spec", "message"), [
    ({"content": {"words": {"gte": 200}}}, "filter.content.words: unknown operator or bad "
                                           "argument 'gte'"),
    ({"attributes": {"language": []}}, "filter.attributes.language: an empty list matches nothing"),
    ({"type": {"prefix": "a", "exists": True}}, "filter.type: an operator dict has exactly one"),
    ({"content": {"words": {"numeric": [">=", "200"]}}}, "numeric takes pairs like"),
    ({"content": {"words": {"numeric": ["~", 2]}}}, "numeric takes pairs like"),
    ({"content": {"words": {"numeric": [">="]}}}, "unknown operator or bad argument 'numeric'"),
    ({"contents": {}}, "unknown section(s) ['contents']"),
    ({"attributes": ["language"]}, "filter.attributes: must be a mapping"),
])
def test_a_filter_that_cannot_mean_anything_is_refused_when_compiled_naming_the_path(spec, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        Filter.compile(spec)


def test_type_and_attribute_filters_never_decode_the_body():
    subscriber = Subscriber("fr", Filter.compile({"type": "coaching.entry.written",
                                                  "attributes": {"language": "fr"}}))
    hostile = Event("x", "coaching.entry.written", {"language": "fr"}, b"\xff not json")
    assert subscriber.offer(hostile) is True  # it matches without ever looking inside
    assert subscriber.offer(entry(2, "en", "low", 10)) is False
    assert subscriber.cost == {"seen": 2}


def test_content_filters_decode_only_what_passed_the_cheaper_tests():
    subscriber = Subscriber("long", Filter.compile(
        {"type": "coaching.entry.written", "content": {"words": {"numeric": [">=", 200]}}}))
    events = [entry(1, "en", "ok", 250), Event("g", "coaching.goal.set"),
              entry(2, "en", "ok", 20), Event("x", "coaching.entry.written", {}, b"[1, 2]")]
    assert [subscriber.offer(e) for e in events] == [True, False, False, False]
    assert subscriber.cost == {"seen": 4, "decoded": 3}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_a_hostile_body_never_raises_and_never_matches_a_content_filter(body):
    subscriber = Subscriber("low", Filter.compile({"content": {"mood": "low"}}))
    matched = subscriber.offer(Event("x", "coaching.entry.written", {}, body))
    try:
        data = json.loads(body)
        assert matched is (isinstance(data, dict) and data.get("mood") == "low")
    except (ValueError, RecursionError):
        assert matched is False and subscriber.cost["undecodable"] == 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["en", "fr", "de"]), st.sampled_from(["low", "ok"]), st.integers(0, 999))
def test_a_compiled_filter_agrees_with_the_same_rule_written_as_a_python_predicate(
        language, mood, words):
    spec = {"type": ["coaching.entry.written"],
            "attributes": {"language": {"anything-but": ["de"]}},
            "content": {"mood": "low", "words": {"numeric": [">=", 200, "<", 800]}}}
    event = entry(1, language, mood, words)
    by_hand = language != "de" and mood == "low" and 200 <= words < 800
    assert Subscriber("s", Filter.compile(spec)).offer(event) is by_hand


def test_an_empty_filter_matches_everything():
    assert Subscriber("all", Filter.compile({})).offer(Event("x", "any.thing")) is True


def test_the_demo_shows_who_got_what_and_what_it_cost(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("french coach        got ['e-2', 'e-3']  (saw 9, decoded 0")
    assert out[1].startswith("long-entry summary  got ['e-1', 'e-3', 'e-4']  (saw 9, decoded 6, "
                             "undecodable 1)")
    assert out[2].startswith("goal tracker        got ['g-1', 'g-2']")
    assert out[3].startswith("low-mood check-in   got ['e-1', 'e-3']  (saw 9, decoded 5")
    assert out[4] == ("refused at subscribe time: filter.content.words: unknown operator or bad "
                      "argument 'gte': 200")


@pytest.mark.parametrize(("spec", "message"), [
    ({"attributes": {"langauge": "fr"}},
     "filter.attributes.langauge: no such field; did you mean 'language'?"),
    ({"content": {"wrods": {"numeric": [">=", 200]}}},
     "filter.content.wrods: no such field; did you mean 'words'?"),
    ({"attributes": {"mood": "low"}}, "filter.attributes.mood: no such field$"),  # content's
    ({"content": {"colour": "red"}}, "filter.content.colour: no such field$"),
])
def test_given_the_events_fields_a_misspelled_field_fails_at_subscription_time(spec, message):
    with pytest.raises(FilterError, match=message):
        Filter.compile({"type": "coaching.entry.written", **spec}, FIELDS)


def test_without_the_fields_a_misspelled_field_compiles_and_matches_nothing():
    """What the compile cannot know: the limit the page's common mistakes warn about."""
    typo = Filter.compile({"attributes": {"langauge": "fr"}})
    right = Filter.compile({"attributes": {"language": "fr"}}, FIELDS)
    event = Event("e-1", "coaching.entry.written", {"language": "fr"})
    assert Subscriber("typo", typo).offer(event) is False
    assert Subscriber("right", right).offer(event) is True


def test_the_demo_refuses_both_typos_at_subscription_time(capsys):
    main()
    refused = [line for line in capsys.readouterr().out.splitlines() if line.startswith("refused")]
    assert refused == [
        ("refused at subscribe time: filter.content.words: unknown operator or bad argument "
         "'gte': 200"),
        ("refused at subscribe time: filter.attributes.langauge: no such field; "
         "did you mean 'language'?")]
