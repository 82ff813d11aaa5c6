"""Undrained DLQ: without an owner, dead letters expire unseen; with alerts and a redrive answered
within the retention, none are lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_undrained_dlq import (
    DAY,
    HOUR,
    DeadLetter,
    ForgottenDLQ,
    WatchedDLQ,
    main,
    reflect,
    simulate,
)


def test_the_demo_loses_six_reflections_without_an_owner_and_none_with_one(capsys):
    main()
    assert capsys.readouterr().out.splitlines() == [
        "ForgottenDLQ: 0 of 20 reflections built, 14 dead letters waiting, 6 expired for good",
        "              no alert in 20 days",
        "WatchedDLQ  : 20 of 20 reflections built, 0 dead letters waiting, 0 expired for good",
        ("              alert at hour 21: oldest dead letter is 1 h old (UnicodeEncodeError);"
        " fixed and redriven at hour 25"),
    ]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40))
def test_broken_every_failure_waits_unseen_until_the_retention_deletes_it(days):
    dlq = ForgottenDLQ()
    outcome = simulate(dlq, days, respond_after=1)  # nobody is alerted, so nobody responds
    expected_expired = sum(1 for d in range(days) if d * DAY + 20 + 14 * DAY <= days * DAY - 1)
    assert outcome.built == 0 and outcome.first_alert is None
    assert outcome.expired == expected_expired
    assert len(dlq.letters) + outcome.expired == days


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10 * DAY))
def test_fixed_once_the_owner_responds_every_reflection_is_built_and_nothing_expires(
        days, respond_after):
    dlq = WatchedDLQ()
    outcome = simulate(dlq, days, respond_after)
    assert outcome.first_alert == (21, "oldest dead letter is 1 h old (UnicodeEncodeError)")
    assert outcome.expired == 0
    if 21 + respond_after < days * DAY:
        assert outcome.built == days and dlq.letters == []
    else:
        assert outcome.built == 0 and len(dlq.letters) == days


def test_the_depth_alert_fires_above_the_limit_even_when_every_letter_is_new():
    dlq = WatchedDLQ(max_age=2, max_depth=3)
    for n in range(4):
        dlq.add(DeadLetter(f"e-{n}", "ValueError", since=10))
    assert dlq.alerts(10) == ["4 dead letters (limit 3)"]
    assert dlq.alerts(12) == ["oldest dead letter is 2 h old (ValueError)",
                              "4 dead letters (limit 3)"]


def test_a_redrive_keeps_what_still_fails_in_order_with_one_more_attempt():
    dlq = WatchedDLQ()
    for entry in ("plain", "emoji \N{FIRE}", "also plain", "more \N{FIRE}"):
        dlq.add(DeadLetter(entry, "TimeoutError", since=0))
    assert dlq.redrive(reflect) == 2  # the buggy handler: the emoji entries still fail
    assert [(d.entry, d.attempts) for d in dlq.letters] == [("emoji \N{FIRE}", 2),
                                                            ("more \N{FIRE}", 2)]
    assert all(d.reason.startswith("UnicodeEncodeError(") for d in dlq.letters)
    assert dlq.redrive(reflect) == 0 and [d.attempts for d in dlq.letters] == [3, 3]


@settings(max_examples=60, deadline=None)
@given(st.integers(10 * DAY, 20 * DAY))
def test_fixed_an_alert_answered_after_the_retention_still_loses_letters(respond_after):
    dlq = WatchedDLQ()
    outcome = simulate(dlq, 30, respond_after)
    deadline = 14 * DAY - 1 * HOUR  # the first letter expires this long after the alert
    lost = 0 if respond_after < deadline else (respond_after - deadline) // DAY + 1
    assert outcome.expired == lost
    assert outcome.built == 30 - lost and dlq.letters == []


def test_the_last_safe_hour_to_answer_the_alert_is_the_retention_minus_the_alert_age():
    assert simulate(WatchedDLQ(), 30, 14 * DAY - 2).expired == 0
    assert simulate(WatchedDLQ(), 30, 14 * DAY - 1).expired == 1
