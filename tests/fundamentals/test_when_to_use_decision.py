"""The decision rules: blockers force a direct call, two reasons for events make events."""

from __future__ import annotations

import pytest

from snippets.fundamentals.when_to_use_decision import (
    COACHING_FEATURES,
    Feature,
    main,
    recommend,
)


def test_a_user_waiting_on_the_other_side_gets_a_direct_call():
    verdict = recommend(Feature("show progress", user_waits_for_downstream=True))
    assert verdict.style == "direct call"
    assert verdict.reasons == ("the user waits for an answer that needs the other side",)


def test_several_growing_reactions_make_events():
    verdict = recommend(Feature("react", reactions=3, reactions_will_grow=True))
    assert verdict.style == "events"
    assert verdict.reasons == ("3 independent reactions", "the roadmap adds reactions")


def test_a_blocker_with_strong_reasons_for_events_gives_the_hybrid():
    verdict = recommend(Feature("credit", atomic_invariant=True, needs_history=True,
                                separate_teams=True))
    assert verdict.style == "direct call + events for side effects"
    assert verdict.reasons[0] == "an invariant must hold atomically"
    assert "other teams own the reactions" in verdict.reasons


@pytest.mark.parametrize(
    "feature",
    [Feature("plain"), Feature("one reason", slow_or_flaky_downstream=True)],
)
def test_one_reason_or_none_is_not_enough_to_pay_for_events(feature):
    assert recommend(feature).style == "direct call (start simple)"


def test_a_negative_reaction_count_is_refused_by_name():
    with pytest.raises(ValueError, match="broken: reactions cannot be negative"):
        recommend(Feature("broken", reactions=-1))


def test_every_coaching_feature_gets_a_reasoned_verdict(capsys):
    styles = {f.name: recommend(f).style for f in COACHING_FEATURES}
    assert styles["agents react to a new entry"] == "events"
    assert styles["show goal progress after saving"] == "direct call"
    assert styles["edit the profile name"] == "direct call (start simple)"
    main()
    out = capsys.readouterr().out
    assert all(f"{name}: {style}" in out for name, style in styles.items())
