"""The consumer's stateful test: it holds for the inbox consumer and shrinks the broken one."""

from __future__ import annotations

import pytest

from snippets.testing import property_based_testing_consumer as module
from snippets.testing.property_based_testing_consumer import (
    SETTINGS,
    ConsumerWithoutInbox,
    Crash,
    Database,
    Feed,
    TotalsConsumer,
    main,
    shortest_failure,
)


@pytest.fixture(scope="module")
def outcomes():
    """Each machine run once (they take seconds), shared by the tests below."""
    return {consumer: shortest_failure(consumer)
            for consumer in (TotalsConsumer, ConsumerWithoutInbox)}


def test_the_page_test_holds_for_the_consumer_with_an_inbox(outcomes):
    assert outcomes[TotalsConsumer] is None


def test_the_consumer_without_an_inbox_is_caught_with_a_three_step_program(outcomes):
    failure, steps = outcomes[ConsumerWithoutInbox]
    assert failure == "totals {'ana': 2}, but the runs applied add up to {'ana': 1}"
    assert steps[0] == "state.publish(km=1, user='ana')"
    assert steps[1] == "state.crash_and_restart(after=1, limit=1)"
    assert len(steps) == 3


def test_a_crash_before_the_commit_redelivers_the_batch_and_the_inbox_absorbs_it():
    feed, db = Feed(), Database()
    for km in (3, 4, 5):
        feed.publish("ana", km)
    with pytest.raises(Crash, match="after 2 of 3 events"):
        TotalsConsumer(feed, db).poll(3, crash_after=2)
    assert db.offset == 0 and db.totals == {"ana": 7}
    assert TotalsConsumer(feed, db).poll(10) == 3
    assert db.offset == 3 and db.totals == {"ana": 12}
    assert TotalsConsumer(feed, db).poll(10) == 0


def test_a_crash_after_the_whole_batch_still_loses_the_commit():
    feed, db = Feed(), Database()
    feed.publish("ben", 2)
    with pytest.raises(Crash, match="after the whole batch of 1, before the commit"):
        ConsumerWithoutInbox(feed, db).poll(5, crash_after=4)
    ConsumerWithoutInbox(feed, db).poll(5)
    assert db.totals == {"ben": 4}  # the bug, by hand: counted twice


def test_the_demo_prints_the_held_property_and_the_shrunk_program(outcomes, monkeypatch, capsys):
    monkeypatch.setattr(module, "shortest_failure", outcomes.__getitem__)
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"TotalsConsumer: {SETTINGS.max_examples} programs, property held"
    assert lines[1:4] == ["ConsumerWithoutInbox: caught",
                          "  totals {'ana': 2}, but the runs applied add up to {'ana': 1}",
                          "  shortest program:"]
    assert lines[4] == "    state.publish(km=1, user='ana')"
