"""The lint names every rule a bad event name breaks, and passes the names they became."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.event_design.event_naming_lint import (
    GLOSSARY,
    IMPERATIVE,
    NOT_PARTICIPLES,
    PLUMBING,
    RENAMES,
    TECHNICAL,
    VAGUE,
    lint,
    main,
)

EXPECTED = {
    "coaching.goal.set_goal": ["not-a-command"],
    "coaching.reminder.send_reminder": ["not-a-command"],
    "coaching.reflection.ready": ["past-tense"],
    "coaching.goal.updated": ["precise"],
    "coaching.entry.row_inserted": ["precise", "no-plumbing"],
    "coaching.entry.written_v2": ["no-version"],
    "coaching.goal_record.changed": ["entity", "precise", "no-plumbing"],
    "journal.entry.created": ["domain", "precise"],
    "GoalSet": ["format"],
    "coaching.goal": ["format"],
}


@pytest.mark.parametrize(("bad", "good"), RENAMES)
def test_each_bad_name_breaks_exactly_its_rules_and_its_rename_passes(bad, good):
    assert [rule.id for rule in lint(bad, GLOSSARY)] == EXPECTED[bad]
    assert lint(good, GLOSSARY) == []


@pytest.mark.parametrize(("name", "rules"), [
    ("coaching.goal.reset", []),
    ("coaching.session.run", []),
    ("coaching.goal.target.raised", ["entity"]),
    ("coaching.goal.target_raised", []),
    ("coaching.goal.create", ["not-a-command"]),
    ("coaching.goal.achievement", ["past-tense"]),
    ("coaching.goal.need", ["past-tense"]),  # ends in -ed, states no fact
    ("coaching.session.proceed", ["past-tense"]),
    ("coaching.entry.rewritten", []),  # an irregular participle behind a prefix
    ("coaching.goal.undone", []),
    ("coaching.goal.goal_event_published", ["no-plumbing"]),
    ("coaching.v2.goal.set", ["no-version"]),
    ("coaching..set", ["format"]),
    ("Coaching.goal.set", ["format"]),
    ("coaching.goal.set ", ["format"]),
    ("", ["format"]),
])
def test_more_names_and_the_rules_they_break(name, rules):
    assert [rule.id for rule in lint(name, GLOSSARY)] == rules


@pytest.mark.parametrize("name", [None, 42, ["coaching", "goal", "set"]])
def test_a_name_that_is_not_a_string_breaks_the_format_rule(name):
    assert [rule.id for rule in lint(name, GLOSSARY)] == ["format"]


WORDS = st.from_regex(r"[a-z]{2,8}", fullmatch=True)


@given(st.sampled_from(sorted(GLOSSARY["coaching"])), WORDS.filter(
    lambda w: w not in IMPERATIVE | TECHNICAL
    and w + "ed" not in VAGUE | TECHNICAL | NOT_PARTICIPLES))
def test_a_glossary_entity_with_a_precise_past_participle_always_passes(entity, verb):
    assert lint(f"coaching.{entity}.{verb}ed", GLOSSARY) == []


@given(WORDS.filter(lambda w: w not in TECHNICAL))
def test_a_plumbing_word_anywhere_is_caught(word):
    assert PLUMBING in lint(f"coaching.goal.{word}_row_added", GLOSSARY)


def test_the_demo_prints_every_rename_and_every_rule(capsys):
    main()
    out = capsys.readouterr().out
    for bad, good in RENAMES:
        assert any(line.startswith(bad) and line.endswith(f"{good} (ok)")
                   for line in out.splitlines()), bad
    assert "  no-version     the version belongs in the envelope" in out
