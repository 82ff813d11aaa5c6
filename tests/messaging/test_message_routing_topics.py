"""In-memory routing: topic patterns, content rules, dead letters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.message_routing_topics import (
    DeadLetteringQueue,
    TopicExchange,
    Unroutable,
    main,
    route_by_content,
    topic_matches,
)


def test_the_demo_routes_by_key_by_content_and_to_the_dead_letters(capsys):
    main()
    assert capsys.readouterr().out == (
        "coaching.entries.created  -> ['audit', 'mood-agent']\n"
        "coaching.goals.set        -> ['audit', 'goal-coach']\n"
        "coaching.goals.set.v2     -> ['audit']\n"
        "billing.invoice.paid      -> no queue is bound to a pattern matching 'billing.invoice.paid'\n"
        "mood 1 'hard day'         -> care-team\n"
        "mood 4 'new goal: 10 km'  -> goal-coach\n"
        "mood 3 'rained'           -> archive\n"
        "reflection handled ['entry-1', 'entry-3']; dead letter 'entry-\\x00corrupt' "
        "after 3 deliveries (ValueError('cannot parse entry'))\n")


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("coaching.*", "coaching.goals", True),
    ("coaching.*", "coaching.goals.set", False),  # * is exactly one word
    ("coaching.*", "coaching", False),
    ("coaching.#", "coaching", True),              # # may be zero words
    ("coaching.#", "coaching.goals.set.v2", True),
    ("#.created", "coaching.entries.created", True),
    ("#.created", "created", True),
    ("*.*.created", "system.agent.created", True),
    ("coaching.#.set", "coaching.set", True),
    ("coaching.#.set", "coaching.goals.set.v2", False),
])
def test_star_is_one_word_and_hash_is_zero_or_more(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


words = st.lists(st.sampled_from(["coaching", "goals", "entries", "set"]), min_size=1, max_size=5)


@given(words)
def test_a_key_matches_itself_hash_matches_all_and_stars_match_by_length(key_words):
    key = ".".join(key_words)
    assert topic_matches(key, key) and topic_matches("#", key)
    for n in range(1, 6):
        assert topic_matches(".".join(["*"] * n), key) is (n == len(key_words))


def test_an_unknown_key_is_refused_by_name_and_stores_nothing():
    exchange = TopicExchange()
    exchange.bind("goal-coach", "coaching.goals.*")
    exchange.publish("coaching.goals.set", "kept")
    with pytest.raises(Unroutable, match="'billing.invoice.paid'"):
        exchange.publish("billing.invoice.paid", "lost?")
    assert dict(exchange.queues) == {"goal-coach": ["kept"]}


@pytest.mark.parametrize(("key", "word"), [("coaching..goals", ""), ("Coaching.goals", "Coaching"),
                                           ("coaching.*", "*")])
def test_a_malformed_key_is_refused_naming_the_word(key, word):
    with pytest.raises(ValueError, match=f"bad word {word!r}".replace("*", r"\*")):
        TopicExchange().publish(key, None)


def test_patterns_are_checked_when_bound_and_keys_must_be_strings():
    exchange = TopicExchange()
    with pytest.raises(ValueError, match="bad word 'go\\*'"):
        exchange.bind("q", "coaching.go*")
    with pytest.raises(TypeError, match="must be a str, not bytes"):
        exchange.publish(b"coaching.goals", None)


def test_a_queue_with_two_matching_bindings_gets_one_copy():
    exchange = TopicExchange()
    exchange.bind("audit", "coaching.#")
    exchange.bind("audit", "coaching.goals.*")
    assert exchange.publish("coaching.goals.set", "x") == ["audit"]
    assert exchange.queues["audit"] == ["x"]


def test_the_first_matching_content_rule_wins_and_the_default_takes_the_rest():
    rules = [("care-team", lambda e: e["mood"] <= 2), ("goal-coach", lambda e: "goal" in e["text"])]
    assert route_by_content({"mood": 1, "text": "goal missed"}, rules, "archive") == "care-team"
    assert route_by_content({"mood": 5, "text": "goal met"}, rules, "archive") == "goal-coach"
    assert route_by_content({"mood": 5, "text": "sunny"}, rules, "archive") == "archive"


def test_a_poison_message_is_dead_lettered_after_the_limit_and_delays_nobody():
    queue = DeadLetteringQueue("reflection", max_deliveries=4)
    for body in ("a", "poison", "b"):
        queue.put(body)
    attempts: list[str] = []

    def handler(body: str) -> None:
        attempts.append(body)
        if body == "poison":
            raise ValueError("cannot parse")

    queue.process(handler)
    assert attempts == ["a", "poison", "b", "poison", "poison", "poison"]
    [dead] = queue.dead_letters
    assert dead["body"] == "poison"
    assert dead["x-death"] == [{"queue": "reflection", "reason": "rejected", "count": 4,
                                "error": "ValueError('cannot parse')"}]
