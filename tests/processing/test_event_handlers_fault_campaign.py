"""The fault campaign: under Hypothesis, seeded as on the page, and against broken consumers.

Hypothesis drives the same ``scenario`` function the page's campaign runs,
through a random source it controls (``st.randoms``), so a failure shrinks
to the shortest journal and fault plan that break the property.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from snippets.processing import event_handlers_fault_campaign
from snippets.processing.event_handlers_fault_campaign import (
    BROKEN,
    CORRECT,
    CRASH_POINTS,
    HOSTILE,
    Crash,
    Faults,
    Record,
    campaign,
    main,
    parse,
    run,
    scenario,
)

plans = st.randoms(use_true_random=False)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
def test_any_journal_under_any_fault_plan_ends_as_the_fault_free_run(rng):
    equal, tried = scenario(rng)
    assert equal, dict(tried)


@pytest.mark.parametrize("variant", BROKEN, ids=lambda v: v.name)
def test_hypothesis_finds_a_fault_plan_that_breaks_each_broken_consumer(variant):
    counterexample = find(plans, lambda rng: not scenario(rng, variant)[0],
                          settings=settings(max_examples=2_000, database=None,
                                            phases=[Phase.generate],
                                            suppress_health_check=list(HealthCheck)))
    assert counterexample is not None


@pytest.fixture(scope="module")
def page_campaign():
    """The page's campaign (seed 2024, 300 scenarios) on every variant."""
    return {variant.name: campaign(2024, 300, variant) for variant in (CORRECT, *BROKEN)}


def test_the_campaign_on_the_page_is_all_equal_and_tried_every_kind_of_fault(page_campaign):
    equal, tried = page_campaign[CORRECT.name]
    assert equal == 300
    for kind in ["published twice", "malformed", "duplicates delivered",
                 "out of publish order", "acks lost", "transient failures retried",
                 *(f"crash {point}" for point in CRASH_POINTS)]:
        assert tried[kind] >= 50, kind
    assert tried["crashes"] == sum(tried[f"crash {p}"] for p in CRASH_POINTS)


@pytest.mark.parametrize("variant", BROKEN, ids=lambda v: v.name)
def test_the_same_campaign_catches_every_broken_consumer_many_times(page_campaign, variant):
    equal, _ = page_campaign[variant.name]
    assert equal < 250


def test_a_crash_inside_the_transaction_rolls_back_and_the_redelivery_applies_it_once():
    class NoLuck(random.Random):
        """Draws that never trigger a random fault."""

        def random(self) -> float:
            return 0.99

    class CrashInsideOnce(Faults):
        def crash(self, point: str) -> None:
            if point == "inside the transaction" and not self.tried["crashes"]:
                self.tried.update(["crashes", f"crash {point}"])
                raise Crash(point)

    records = [Record("m-1", "ana", b'{"user": "ana", "mood": "ok", "words": 5}')]
    expected, _ = run(records, 1, Faults(None))
    actual, tried = run(records, 1, CrashInsideOnce(NoLuck()))
    assert actual == expected == [("ana", 1, "m-1", "steady", 5)]
    assert tried["crash inside the transaction"] == 1 and tried["deliveries"] == 2


def test_a_duplicate_from_the_producer_is_applied_once_and_malformed_entries_are_dead_lettered():
    good = Record("m-1", "ana", b'{"user": "ana", "mood": "good", "words": 9}')
    bad = Record("m-2", "ana", b"\xff\xfe")
    state, tried = run([good, bad, good, bad], 2, Faults(None))
    assert state == [("ana", 1, "m-1", "thriving", 9),
                     ("m-2", "not JSON: 'utf-8' codec can't decode byte 0xff in position 0: "
                             "invalid start byte")]
    assert tried["duplicates delivered"] == 2


@pytest.mark.parametrize("body", HOSTILE)
def test_every_hostile_body_of_the_campaign_is_refused_with_a_reason(body):
    with pytest.raises(ValueError, match=r"not JSON|no user|unknown mood|words must be a count"):
        parse(body)


def test_without_faults_the_consumer_reads_in_publish_order():
    records = [Record(f"m-{n}", user, f'{{"user": "{user}", "mood": "ok", "words": {n}}}'.encode())
               for n, user in enumerate(["ana", "ben", "ana", "caro", "ben"])]
    _, tried = run(records, 3, Faults(None))
    assert tried["out of publish order"] == 0 and tried["deliveries"] == 5
    assert CORRECT.inbox == "same transaction"


def test_the_page_prints_exactly_the_figures_this_test_checked(page_campaign, capsys,
                                                              monkeypatch):
    def already_run(seed: int, scenarios: int, variant=CORRECT):
        assert (seed, scenarios) == (2024, 300)  # main() runs the campaign checked above
        return page_campaign[variant.name]

    monkeypatch.setattr(event_handlers_fault_campaign, "campaign", already_run)
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "300 scenarios, seed 2024: what the faults did"
    _, tried = page_campaign[CORRECT.name]
    for line in out[1:13]:
        label, figure = line.strip().rsplit(maxsplit=1)
        assert int(figure.replace(",", "")) == tried[label], line
    assert out[13] == "final state equal to the fault-free run"
    for line, variant in zip(out[14:], (CORRECT, *BROKEN)):
        assert line == f"  {variant.name:<42}{page_campaign[variant.name][0]:>4} / 300"
