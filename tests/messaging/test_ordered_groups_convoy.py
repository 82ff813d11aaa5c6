"""Ordered groups: order within a group for any interleaving and worker count, groups in
parallel (proved with a barrier), and what each failure policy does to a group."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.ordered_groups_convoy import (
    Message,
    OnFailure,
    OrderedGroups,
    main,
)
from tests.messaging.conftest import run


def test_the_demo_parks_blocks_or_skips_bens_poison_entry(capsys):
    run(main())
    assert capsys.readouterr().out == """\
park  handled {'ana': [1, 2, 3], 'ben': [1], 'caro': [1, 2]}
      parked {'ben': [2, 3, 4]}
      after the fix, redrive('ben'): ben [1, 2, 3, 4]
block handled {'ana': [1, 2, 3], 'ben': [1], 'caro': [1, 2]}
      blocked at {'ben': 2}
      after the fix, redrive('ben'): ben [1, 2, 3, 4]
skip  handled {'ana': [1, 2, 3], 'ben': [1, 3, 4], 'caro': [1, 2]}
      dead letter {'ben': 2}
never two entries of one person at once; up to 2 people at once (2 workers)
"""


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


@st.composite
def interleavings(draw):
    """Messages of up to 5 groups, interleaved any way that keeps each group's own order,
    with a number of yields for each handler call and between submissions."""
    counts = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    order = draw(st.permutations([g for g, n in enumerate(counts) for _ in range(n)]))
    seen: dict[int, int] = {}
    messages = []
    for g in order:
        seen[g] = seen.get(g, 0) + 1
        messages.append(Message(f"g{g}", seen[g]))
    yields = draw(st.lists(st.integers(0, 4), min_size=len(messages), max_size=len(messages)))
    pauses = draw(st.lists(st.booleans(), min_size=len(messages), max_size=len(messages)))
    return messages, dict(zip(messages, yields)), pauses


@settings(max_examples=150, deadline=None)
@given(interleavings(), st.integers(1, 8))
def test_for_any_interleaving_and_worker_count_each_group_is_handled_in_order(case, workers):
    messages, yields, pauses = case
    handled: list[Message] = []
    in_flight: set[str] = set()

    async def handler(message: Message) -> None:
        assert message.group not in in_flight, f"{message.group} ran twice at once"
        in_flight.add(message.group)
        for _ in range(yields[message]):
            await asyncio.sleep(0)
        handled.append(message)
        in_flight.discard(message.group)

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=workers) as groups:
            for message, pause in zip(messages, pauses):
                await groups.submit(message)
                if pause:
                    await asyncio.sleep(0)  # let workers run between submissions
            await groups.drained()

    run(scenario(), timeout=20)
    assert sorted(handled, key=lambda m: (m.group, m.seq)) == sorted(
        messages, key=lambda m: (m.group, m.seq))
    for group in {m.group for m in messages}:
        assert [m.seq for m in handled if m.group == group] == sorted(
            m.seq for m in messages if m.group == group)


@pytest.mark.parametrize("groups_count", [2, 4])
def test_different_groups_run_at_the_same_time(groups_count):
    """Each group's first message waits at a barrier for all the others: it can only be
    passed if that many groups are in flight together. A serial consumer would hang."""
    barrier = asyncio.Barrier(groups_count)
    handled: list[Message] = []

    async def handler(message: Message) -> None:
        if message.seq == 1:
            await barrier.wait()
        handled.append(message)

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=groups_count) as groups:
            for seq in (1, 2):
                for g in range(groups_count):
                    await groups.submit(Message(f"g{g}", seq))
            await groups.drained()

    run(scenario(), timeout=10)
    assert len(handled) == 2 * groups_count


def test_a_slow_group_does_not_hold_up_the_others():
    """Group 'slow' occupies one of two workers indefinitely; everything else still runs,
    including groups that a hash would have put on the same shard."""
    release = asyncio.Event()
    handled: list[str] = []

    async def handler(message: Message) -> None:
        if message.group == "slow":
            await release.wait()
        handled.append(f"{message.group}-{message.seq}")

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=2) as groups:
            await groups.submit(Message("slow", 1))
            await groups.submit(Message("slow", 2))
            for g in range(10):
                await groups.submit(Message(f"u{g}", 1))
            async with asyncio.timeout(5):
                while len(handled) < 10:
                    await asyncio.sleep(0)
            assert "slow-1" not in handled
            release.set()
            await groups.drained()

    run(scenario())
    assert handled[-2:] == ["slow-1", "slow-2"]


def test_groups_take_turns_so_a_busy_group_cannot_starve_a_quiet_one():
    handled: list[str] = []

    async def handler(message: Message) -> None:
        handled.append(message.group)

    async def scenario() -> None:
        groups = OrderedGroups(handler, workers=1)
        for seq in range(1, 6):
            await groups.submit(Message("busy", seq))
        await groups.submit(Message("quiet", 1))
        async with groups:
            await groups.drained()

    run(scenario())
    assert handled.index("quiet") <= 1


def poisoned(poison: set[Message], fixed: list[bool]):
    handled: list[Message] = []

    async def handler(message: Message) -> None:
        await asyncio.sleep(0)
        if message in poison and not fixed[0]:
            raise RuntimeError(f"cannot handle {message.group}-{message.seq}")
        handled.append(message)

    return handler, handled


@settings(max_examples=80, deadline=None)
@given(interleavings(), st.integers(1, 4), st.data())
def test_when_a_message_fails_its_group_stops_there_and_resumes_in_order(case, workers, data):
    messages, _, _ = case
    poison = set(data.draw(st.lists(st.sampled_from(messages), max_size=3)))
    fixed = [False]
    handler, handled = poisoned(poison, fixed)

    async def scenario() -> OrderedGroups:
        async with OrderedGroups(handler, workers=workers, sleep=no_wait) as groups:
            for message in messages:
                await groups.submit(message)
            await groups.drained()
            for group, rest in groups.parked.items():
                first = min((m for m in poison if m.group == group), key=lambda m: m.seq)
                assert rest == sorted((m for m in messages if m.group == group and
                                       m.seq >= first.seq), key=lambda m: m.seq)
            for group in {m.group for m in messages}:
                stop = min((m.seq for m in poison if m.group == group), default=None)
                assert [m.seq for m in handled if m.group == group] == sorted(
                    m.seq for m in messages if m.group == group and (stop is None or m.seq < stop))
            fixed[0] = True
            for group in list(groups.parked):
                await groups.redrive(group)
            await groups.drained()
            return groups

    groups = run(scenario(), timeout=20)
    assert not groups.parked
    for group in {m.group for m in messages}:
        assert [m.seq for m in handled if m.group == group] == sorted(
            m.seq for m in messages if m.group == group)


def test_a_failure_is_retried_in_place_with_backoff_before_anything_later_of_its_group():
    attempts: list[str] = []
    waits: list[float] = []

    async def handler(message: Message) -> None:
        attempts.append(f"{message.group}-{message.seq}")
        if message.seq == 1 and attempts.count("a-1") < 3:
            raise TimeoutError("model did not answer")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=3, max_attempts=3, backoff=0.5,
                                 sleep=sleep) as groups:
            await groups.submit(Message("a", 1))
            await groups.submit(Message("a", 2))
            await groups.drained()

    run(scenario())
    assert attempts == ["a-1", "a-1", "a-1", "a-2"]
    assert waits == [0.5, 1.0]


def test_a_blocked_group_keeps_its_later_messages_queued_behind_the_failure():
    fixed = [False]
    handler, handled = poisoned({Message("b", 2)}, fixed)

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=2, on_failure="block", sleep=no_wait) as groups:
            for seq in (1, 2, 3):
                await groups.submit(Message("b", seq))
                await groups.submit(Message("c", seq))
            await groups.drained()
            assert groups.blocked == {"b": Message("b", 2)}
            assert groups.errors == {"b": "RuntimeError: cannot handle b-2"}
            assert [m.seq for m in groups._pending["b"]] == [2, 3]
            fixed[0] = True
            assert await groups.redrive("b") == 2
            await groups.drained()

    run(scenario())
    assert [m.seq for m in handled if m.group == "b"] == [1, 2, 3]
    assert [m.seq for m in handled if m.group == "c"] == [1, 2, 3]


def test_skip_dead_letters_the_failure_and_lets_the_group_run_on_without_it():
    handler, handled = poisoned({Message("b", 2)}, [False])

    async def scenario() -> OrderedGroups:
        async with OrderedGroups(handler, workers=2, on_failure="skip", sleep=no_wait) as groups:
            for seq in (1, 2, 3):
                await groups.submit(Message("b", seq))
            await groups.drained()
            with pytest.raises(KeyError, match="group 'b' is neither parked nor blocked"):
                await groups.redrive("b")
            return groups

    groups = run(scenario())
    assert [m.seq for m in handled] == [1, 3]
    assert groups.dead == [(Message("b", 2), "RuntimeError: cannot handle b-2")]


def test_a_message_submitted_out_of_order_is_refused_and_loses_nothing_already_queued():
    handled: list[Message] = []

    async def handler(message: Message) -> None:
        handled.append(message)

    async def scenario() -> None:
        async with OrderedGroups(handler, workers=1) as groups:
            await groups.submit(Message("ana", 5))
            with pytest.raises(ValueError, match="group 'ana': seq 3 after 5 would break its order"):
                await groups.submit(Message("ana", 3))
            with pytest.raises(ValueError, match="expected a Message with a group"):
                await groups.submit(Message("", 1))
            with pytest.raises(ValueError, match="expected a Message with a group"):
                await groups.submit(("ana", 6))
            await groups.submit(Message("ana", 6))
            await groups.drained()

    run(scenario())
    assert handled == [Message("ana", 5), Message("ana", 6)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workers": 0}, "workers and max_attempts must be at least 1, got 0 and 3"),
    ({"max_attempts": 0}, "got 4 and 0"),
])
def test_a_pool_that_could_do_no_work_is_refused(kwargs, message):
    async def handler(message: Message) -> None:
        pass

    with pytest.raises(ValueError, match=message):
        OrderedGroups(handler, **kwargs)


def test_an_unknown_failure_policy_is_refused():
    async def handler(message: Message) -> None:
        pass

    with pytest.raises(ValueError, match="'retry' is not a valid OnFailure"):
        OrderedGroups(handler, on_failure="retry")
    assert OnFailure("park") is OnFailure.PARK


def test_two_publishers_racing_on_one_group_can_never_get_a_lower_seq_accepted_after_a_higher():
    """Two publishers submit ana-3 and ana-2 at the same moment, while a worker holds the
    pool's lock: whichever is accepted first, the other must be refused, never queued
    behind it out of order."""
    handled: list[int] = []

    async def handler(message: Message) -> None:
        handled.append(message.seq)

    async def scenario() -> list[object]:
        async with OrderedGroups(handler, workers=1) as groups:
            await groups.submit(Message("ana", 1))
            await groups.drained()
            async with groups._changed:  # contention: a worker is in its critical section
                racers = [asyncio.create_task(groups.submit(Message("ana", seq)))
                          for seq in (3, 2)]
                await asyncio.sleep(0)  # both publishers reach the lock and wait on it
            outcomes = await asyncio.gather(*racers, return_exceptions=True)
            await groups.drained()
            return outcomes

    first, second = run(scenario())
    assert first is None
    assert isinstance(second, ValueError)
    assert str(second) == "group 'ana': seq 2 after 3 would break its order"
    assert handled == [1, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=8), min_size=2, max_size=6),
       st.integers(1, 4))
def test_for_any_concurrent_publishers_each_group_is_handled_in_strictly_rising_seq(
        publishers, workers):
    """Several publishers submit to the same two groups at once, with the workers running:
    what is accepted is handled in rising seq per group, and every refusal names a seq
    that was at or below one already accepted."""
    handled: dict[str, list[int]] = {"a": [], "b": []}

    async def handler(message: Message) -> None:
        await asyncio.sleep(0)
        handled[message.group].append(message.seq)

    async def scenario() -> tuple[list[Message], list[Message]]:
        accepted: list[Message] = []
        refused: list[Message] = []
        async with OrderedGroups(handler, workers=workers) as groups:
            async def publish(p: int, seqs: list[int]) -> None:
                for seq in seqs:
                    message = Message("ab"[(p + seq) % 2], seq)
                    try:
                        await groups.submit(message)
                        accepted.append(message)
                    except ValueError:
                        refused.append(message)
                    await asyncio.sleep(0)

            await asyncio.gather(*[publish(p, seqs) for p, seqs in enumerate(publishers)])
            await groups.drained()
        return accepted, refused

    accepted, refused = run(scenario(), timeout=20)
    for group, seqs in handled.items():
        assert seqs == sorted(set(seqs)), f"group {group} handled out of order: {seqs}"
        assert seqs == [m.seq for m in accepted if m.group == group]
    assert len(accepted) + len(refused) == sum(map(len, publishers))
