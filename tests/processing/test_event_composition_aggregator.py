"""Tests of the aggregator: completion, deadlines, duplicates, strays, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_composition_aggregator import (
    Aggregate,
    Aggregator,
    Reply,
    main,
)

AGENTS = ("mood", "goals", "habits")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_the_last_expected_reply_completes_the_group_at_once():
    async def scenario():
        aggregator = Aggregator()
        future = aggregator.expect("e-1", AGENTS, deadline=3600)
        for agent in AGENTS:
            assert not future.done()
            assert aggregator.receive(Reply("e-1", agent, agent.upper())) == "accepted"
        assert future.done()  # no waiting for the hour-long deadline
        return future.result()

    aggregate = run(scenario())
    assert aggregate == Aggregate("e-1", {"mood": "MOOD", "goals": "GOALS", "habits": "HABITS"}, ())
    assert aggregate.complete


def test_the_deadline_completes_the_group_with_what_arrived_and_names_the_silent():
    async def scenario():
        aggregator = Aggregator()
        future = aggregator.expect("e-1", AGENTS, deadline=0.01)
        aggregator.receive(Reply("e-1", "goals", "on track"))
        return await future, aggregator.receive(Reply("e-1", "mood", "late"))

    aggregate, late = run(scenario())
    assert aggregate.missing == ("habits", "mood") and not aggregate.complete
    assert aggregate.replies == {"goals": "on track"} and late == "late"


def test_duplicates_strays_and_unknown_ids_are_counted_and_ignored():
    async def scenario():
        aggregator = Aggregator()
        future = aggregator.expect("e-1", ["mood"], deadline=5)
        outcomes = [aggregator.receive(r) for r in [
            Reply("e-7", "mood", "?"), Reply("e-1", "intruder", "?"),
            Reply("e-1", "mood", "first"), Reply("e-1", "mood", "second")]]
        return outcomes, await future, aggregator.ignored

    outcomes, aggregate, ignored = run(scenario())
    assert outcomes == ["unknown", "unexpected agent", "accepted", "late"]
    assert aggregate.replies == {"mood": "first"}
    assert ignored == {"unknown": 1, "unexpected agent": 1, "late": 1}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(AGENTS), min_size=1, unique=True), st.integers(1, 4),
       st.data())
def test_any_interleaving_with_duplicates_yields_each_agents_first_reply(agents, groups, data):
    replies = [Reply(f"e-{g}", agent, f"{agent} #{copy} for e-{g}")
               for g in range(groups) for agent in agents for copy in range(data.draw(
                   st.integers(1, 3)))]
    replies += [Reply("e-stray", "mood", "nobody asked")]
    arrival = data.draw(st.permutations(replies))

    async def scenario():
        aggregator = Aggregator()
        futures = [aggregator.expect(f"e-{g}", agents, deadline=60) for g in range(groups)]
        for reply in arrival:
            aggregator.receive(reply)
        return [await f for f in futures]

    for aggregate in run(scenario()):
        assert aggregate.complete
        firsts = {}
        for reply in arrival:
            if reply.correlation_id == aggregate.correlation_id:
                firsts.setdefault(reply.agent, reply.text)
        assert aggregate.replies == firsts


@pytest.mark.parametrize(("agents", "deadline"), [((), 1), (("mood",), 0), (("mood",), -1)])
def test_impossible_expectations_are_refused(agents, deadline):
    async def scenario():
        with pytest.raises(ValueError, match="need at least one agent and a positive deadline"):
            Aggregator().expect("e-1", agents, deadline)

    run(scenario())


def test_a_correlation_id_cannot_be_reused_while_it_is_remembered():
    async def scenario():
        aggregator = Aggregator(remember=1)
        aggregator.expect("e-1", ["mood"], 5)
        with pytest.raises(ValueError, match="'e-1' is already in use"):
            aggregator.expect("e-1", ["mood"], 5)
        aggregator.receive(Reply("e-1", "mood", "ok"))
        with pytest.raises(ValueError, match="already in use"):
            aggregator.expect("e-1", ["mood"], 5)
        aggregator.expect("e-2", ["mood"], 5)
        aggregator.receive(Reply("e-2", "mood", "ok"))  # pushes e-1 out of memory
        return aggregator.receive(Reply("e-1", "mood", "very late"))

    assert run(scenario()) == "unknown"  # bounded memory: old ids are forgotten


def test_a_caller_that_cancels_its_wait_frees_the_group_and_its_timer():
    async def scenario():
        aggregator = Aggregator()
        future = aggregator.expect("e-1", AGENTS, deadline=3600)
        future.cancel()
        await asyncio.sleep(0)  # let the done-callback run
        return aggregator.receive(Reply("e-1", "mood", "too late")), aggregator._groups

    outcome, groups = run(scenario())
    assert outcome == "late" and groups == {}


def test_the_demo_completes_one_entry_and_times_out_the_other(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert "entry-1 from goals  : duplicate" in out
    assert out[-4].startswith("entry-1 complete=True")
    assert out[-3].startswith("entry-2 complete=False missing=['habits']")
    assert out[-2] == "entry-2 from habits : late"
    assert out[-1] == "ignored: {'duplicate': 1, 'late': 1, 'unexpected agent': 1, 'unknown': 1}"
