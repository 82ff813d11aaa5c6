"""Tests of the dead-letter alert rules: pending, firing, resolving, and the rule file."""

from __future__ import annotations

import pytest
import yaml

from snippets.monitoring.error_handling_alerts import (
    RULES,
    Evaluator,
    Rule,
    Snapshot,
    main,
)

RATE = Rule("Rate", "rate", threshold=2, for_seconds=60, severity="page", summary="s", window=100)
AGE = Rule("Age", "oldest_age", threshold=3600, for_seconds=0, severity="ticket", summary="s")


def test_a_rate_alert_is_pending_first_and_fires_only_after_holding_for_its_duration():
    evaluator = Evaluator([RATE])
    burst = Snapshot([10.0, 20.0, 30.0], [])
    assert evaluator.evaluate(burst, 30) == {"Rate": ("pending", 3.0)}
    assert evaluator.evaluate(burst, 89) == {"Rate": ("pending", 3.0)}
    assert evaluator.evaluate(burst, 90) == {"Rate": ("firing", 3.0)}
    assert evaluator.evaluate(burst, 200) == {"Rate": ("inactive", 0.0)}


def test_a_blip_shorter_than_the_duration_never_fires_and_restarts_the_clock():
    evaluator = Evaluator([RATE])
    assert evaluator.evaluate(Snapshot([1.0, 2.0, 3.0], []), 3)[("Rate")][0] == "pending"
    assert evaluator.evaluate(Snapshot([1.0, 2.0, 3.0], []), 50)[("Rate")][0] == "pending"
    assert evaluator.evaluate(Snapshot([1.0, 2.0, 3.0], []), 103)[("Rate")][0] == "inactive"
    again = Snapshot([1.0, 2.0, 3.0, 150.0, 151.0, 152.0], [])
    assert evaluator.evaluate(again, 152)["Rate"] == ("pending", 3.0)  # not firing: clock restarted


def test_the_threshold_itself_does_not_alert():
    evaluator = Evaluator([RATE, AGE])
    states = evaluator.evaluate(Snapshot([3550.0, 3560.0], [0.0]), 3600)
    assert states == {"Rate": ("inactive", 2.0), "Age": ("inactive", 3600.0)}


def test_the_age_alert_watches_only_letters_still_waiting():
    evaluator = Evaluator([AGE])
    assert evaluator.evaluate(Snapshot([0.0], []), 99_999) == {"Age": ("inactive", 0.0)}
    assert evaluator.evaluate(Snapshot([0.0, 10.0], [10.0, 500.0]), 3611) == {
        "Age": ("firing", 3601.0)}


def test_a_rule_with_an_unknown_measure_is_refused_when_loaded_not_when_evaluated():
    bad = Rule("Typo", "rtae", threshold=1, for_seconds=0, severity="page", summary="s")
    with pytest.raises(ValueError, match="rule 'Typo': unknown measure 'rtae'"):
        Evaluator([bad])


def test_duplicate_rule_names_are_refused():
    with pytest.raises(ValueError, match="rule names must be unique"):
        Evaluator([RATE, RATE])


def test_the_rules_render_as_a_prometheus_rule_file_with_the_same_thresholds():
    from snippets.monitoring.error_handling_alerts import prometheus_rules

    doc = yaml.safe_load(prometheus_rules(RULES))
    [group] = doc["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    # Summed over the counter's series (one per consumer and reason), as value() counts.
    assert rules["DeadLettersArriving"]["expr"] == (
        "sum(increase(coaching_dead_letters_total[300s])) > 5")
    assert rules["DeadLettersArriving"]["for"] == "120s"
    assert rules["DeadLetterWaiting"]["expr"] == (
        "time() - coaching_dead_letters_oldest_waiting_timestamp_seconds > 3600")
    assert rules["DeadLetterWaiting"]["labels"] == {"severity": "ticket"}
    assert "redrive" in rules["DeadLetterWaiting"]["annotations"]["summary"]


def test_the_demo_fires_the_rate_alert_during_the_outage_and_the_age_alert_later(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "t= 180s  DeadLettersArriving pending (9), DeadLetterWaiting inactive (120)"
    assert lines[3].startswith("t= 300s  DeadLettersArriving firing (12)")
    assert lines[6] == "t=3900s  DeadLettersArriving inactive (0), DeadLetterWaiting firing (3705)"


def test_the_rate_rule_counts_the_letters_of_every_consumer_and_reason_together():
    """The metric the rule reads has a series per consumer and reason: the rule must add
    them up, as the tested evaluator does: three letters from each of two consumers
    count six, not three twice."""
    from prometheus_client import CollectorRegistry

    from snippets.monitoring.performance_metrics_prometheus import ConsumerMetrics

    metrics = ConsumerMetrics(CollectorRegistry())
    for consumer in ("mood", "goals"):
        metrics.dead_letters.labels(consumer=consumer, reason="timeout").inc(3)
    series = [s for family in metrics.dead_letters.collect() for s in family.samples
              if s.name.endswith("_total")]
    assert len(series) == 2 and all(s.value == 3 for s in series)
    evaluator = Evaluator([RATE])
    assert evaluator.evaluate(Snapshot([float(t) for t in range(6)], []), 10.0)[RATE.name][1] == 6
    assert RATE.promql().startswith("sum(increase(coaching_dead_letters_total[")
