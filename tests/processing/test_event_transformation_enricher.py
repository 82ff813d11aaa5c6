"""Tests of the content enricher: cache, deadline, stale fallback, degraded and required modes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_transformation_enricher import (
    EnrichmentError,
    GoalEnricher,
    main,
)

GOALS = {"g-1": "Run 5 km", "g-2": "Sleep by 23:00"}


class Service:
    """A fake goals service: counts calls, can be down or hang."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.mode = "up"

    async def __call__(self, ids: list[str]) -> dict[str, str]:
        self.calls.append(list(ids))
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "down":
            raise ConnectionError("refused")
        if self.mode == "broken":
            raise KeyError("bug in the client")
        return {i: GOALS[i] for i in ids if i in GOALS}


def enrich(enricher, event):
    return asyncio.run(asyncio.wait_for(enricher.enrich(event), timeout=10))


def test_titles_are_added_in_order_once_per_id_and_the_input_is_not_modified():
    service = Service()
    event = {"entry_id": "e-1", "goal_ids": ["g-2", "g-1", "g-2"], "text": "keep me"}
    original = {**event, "goal_ids": list(event["goal_ids"])}
    enriched = enrich(GoalEnricher(service), event)
    assert enriched["goals"] == [{"id": "g-2", "title": "Sleep by 23:00"},
                                 {"id": "g-1", "title": "Run 5 km"}]
    assert enriched["enrichment"] == {"status": "complete", "notes": []}
    assert enriched["text"] == "keep me" and event == original
    assert service.calls == [["g-2", "g-1"]]


def test_fresh_cached_titles_need_no_call_and_expired_ones_are_fetched_again():
    now, service = [0.0], Service()
    enricher = GoalEnricher(service, ttl=60, clock=lambda: now[0])
    enrich(enricher, {"goal_ids": ["g-1"]})
    now[0] = 60.0
    enrich(enricher, {"goal_ids": ["g-1"]})
    assert len(service.calls) == 1
    now[0] = 61.0
    enrich(enricher, {"goal_ids": ["g-1", "g-2"]})
    assert service.calls[-1] == ["g-1", "g-2"]


def test_an_unknown_goal_is_an_answer_not_a_failure_even_when_titles_are_required():
    enriched = enrich(GoalEnricher(Service(), required=True), {"goal_ids": ["g-404"]})
    assert enriched["goals"] == [{"id": "g-404", "title": None}]
    assert enriched["enrichment"] == {"status": "complete", "notes": ["g-404: unknown goal"]}


@pytest.mark.parametrize(("mode", "reason"), [("down", "ConnectionError: refused"),
                                              ("hang", "TimeoutError"),
                                              ("broken", "KeyError: 'bug in the client'")])
def test_a_failed_lookup_falls_back_to_stale_titles_and_marks_missing_ones(mode, reason):
    now, service = [0.0], Service()
    enricher = GoalEnricher(service, ttl=60, timeout=0.02, clock=lambda: now[0])
    enrich(enricher, {"goal_ids": ["g-1"]})
    now[0], service.mode = 500.0, mode
    enriched = enrich(enricher, {"entry_id": "e-2", "goal_ids": ["g-1", "g-2"]})
    assert enriched["goals"] == [{"id": "g-1", "title": "Run 5 km"}, {"id": "g-2", "title": None}]
    assert enriched["enrichment"] == {"status": "degraded", "notes": [
        f"g-1: stale title ({reason})", f"g-2: no title ({reason})"]}


def test_when_titles_are_required_a_failed_lookup_raises_so_the_message_is_retried():
    service = Service()
    service.mode = "down"
    with pytest.raises(EnrichmentError, match="e-3: g-1: no title \\(ConnectionError: refused\\)"):
        enrich(GoalEnricher(service, required=True), {"entry_id": "e-3", "goal_ids": ["g-1"]})


def test_an_event_without_goals_passes_through_complete_without_a_lookup():
    service = Service()
    assert enrich(GoalEnricher(service), {"entry_id": "e-1"})["enrichment"]["status"] == "complete"
    assert service.calls == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["g-1", "g-2", "g-3"]), max_size=4), max_size=6),
       st.lists(st.sampled_from(["up", "down"]), min_size=6, max_size=6))
def test_every_goal_gets_a_title_or_none_and_degraded_means_a_lookup_failed(batches, modes):
    service = Service()
    enricher = GoalEnricher(service, ttl=0.5, clock=iter(range(100)).__next__)
    for ids, mode in zip(batches, modes):
        service.mode = mode
        calls = len(service.calls)
        enriched = enrich(enricher, {"goal_ids": ids})
        assert [g["id"] for g in enriched["goals"]] == list(dict.fromkeys(ids))
        for goal in enriched["goals"]:
            assert goal["title"] in (GOALS.get(goal["id"]), None)
        failed = mode == "down" and len(service.calls) > calls
        assert (enriched["enrichment"]["status"] == "degraded") is failed


def test_the_demo_shows_complete_stale_degraded_and_required(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert "'status': 'complete', 'notes': ['g-9: unknown goal']" in out[1]
    assert "g-1: stale title (TimeoutError)" in out[3]
    assert "g-3: no title (ConnectionError" in out[5]
    assert out[6].startswith("required titles: e-4: g-2: no title")
