"""Tests of the in-memory event bus: routing, concurrency, isolation, order, shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.fundamentals.core_concepts_event_bus import (
    BusClosedError,
    Event,
    EventBus,
    main,
    matches,
    parse_channel,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


@pytest.mark.parametrize(
    ("pattern", "channel", "expected"),
    [
        ("coaching.goals", "coaching.goals", True),
        ("coaching.goals", "coaching.entries", False),
        ("coaching.*", "coaching.goals", True),
        ("coaching.*", "coaching.goals.set", False),
        ("coaching.*", "coaching", False),
        ("coaching.#", "coaching", True),
        ("coaching.#", "coaching.goals.set", True),
        ("#", "system.agent.register", True),
        ("*.agent.*", "system.agent.register", True),
        ("coaching.#.set", "coaching.goals.weekly.set", True),
        ("coaching.#.set", "coaching.goals.weekly.cleared", False),
        ("system.agent.register", "system.agent", False),
    ],
)
def test_patterns_match_exactly_the_channels_they_describe(pattern, channel, expected):
    assert matches(parse_channel(pattern, pattern=True), parse_channel(channel)) is expected


@pytest.mark.parametrize(
    ("name", "segment"),
    [("", ""), ("Coaching.goals", "Coaching"), ("coaching..goals", ""), ("coaching.go als", "go als")],
)
def test_an_invalid_channel_is_refused_with_the_offending_segment_named(name, segment):
    with pytest.raises(ValueError, match=f"invalid channel {name!r}: segment {segment!r}"):
        parse_channel(name)


def test_wildcards_are_allowed_in_patterns_but_not_in_published_channels():
    assert parse_channel("coaching.*", pattern=True) == ("coaching", "*")
    with pytest.raises(ValueError, match="segment '\\*'"):
        parse_channel("coaching.*")
    with pytest.raises(ValueError, match="segment 'go\\*'"):
        parse_channel("coaching.go*", pattern=True)


def test_publishing_on_an_invalid_channel_or_a_non_string_fails_loudly():
    async def scenario():
        bus = EventBus()
        with pytest.raises(ValueError, match="invalid channel 'coaching.Goals'"):
            await bus.publish("coaching.Goals", {})
        with pytest.raises(TypeError, match="channel must be a str, not int"):
            await bus.publish(42, {})

    run(scenario())


def test_a_non_callable_handler_is_refused_by_type():
    async def scenario():
        bus = EventBus()
        with pytest.raises(TypeError, match="handler must be callable, not str"):
            bus.subscribe("coaching.goals", "not a function")
        with pytest.raises(ValueError, match="invalid channel"):
            bus.subscribe("coaching.Goals", lambda event: None)
        assert bus._subscriptions == []

    run(scenario())


def test_every_matching_subscriber_gets_the_event_and_no_other_does():
    async def scenario():
        seen: dict[str, list[str]] = {"exact": [], "star": [], "hash": [], "other": []}
        async with EventBus() as bus:
            for key, pattern in [("exact", "coaching.goals"), ("star", "coaching.*"),
                                 ("hash", "#"), ("other", "system.agent.register")]:
                bus.subscribe(pattern, lambda e, key=key: seen[key].append(e.channel))
            await bus.publish("coaching.goals", 1)
            await bus.publish("coaching.entries.created", 2)
            await bus.publish("system.agent.register", 3)
        return seen

    assert run(scenario()) == {
        "exact": ["coaching.goals"],
        "star": ["coaching.goals"],
        "hash": ["coaching.goals", "coaching.entries.created", "system.agent.register"],
        "other": ["system.agent.register"],
    }


def test_handlers_run_concurrently_each_waits_for_the_other_at_a_barrier():
    async def scenario():
        barrier = asyncio.Barrier(2)
        passed: list[str] = []

        async def agent(event: Event, name: str) -> None:
            await barrier.wait()  # sequential dispatch would deadlock here
            passed.append(name)

        async with EventBus() as bus:
            bus.subscribe("coaching.entries.created", lambda e: agent(e, "mood"))
            bus.subscribe("coaching.entries.created", lambda e: agent(e, "goals"))
            await bus.publish("coaching.entries.created", {})
            await bus.join()
        return sorted(passed)

    assert run(scenario()) == ["goals", "mood"]


def test_a_slow_handler_delays_no_other_subscriber():
    async def scenario():
        fast_done = asyncio.Event()
        fast_seen: list[int] = []

        async def slow(event: Event) -> None:
            await fast_done.wait()  # released only once the fast one has seen all

        async def fast(event: Event) -> None:
            fast_seen.append(event.seq)
            if len(fast_seen) == 5:
                fast_done.set()

        async with EventBus() as bus:
            bus.subscribe("coaching.goals", slow)
            bus.subscribe("coaching.goals", fast)
            for i in range(5):
                await bus.publish("coaching.goals", i)
        return fast_seen

    assert run(scenario()) == [1, 2, 3, 4, 5]


def test_a_failing_handler_is_reported_and_isolated(caplog):
    caplog.set_level(logging.ERROR, logger="event_bus")
    reported = []

    async def scenario():
        healthy: list[int] = []

        def broken(event: Event) -> None:
            if event.data == "poison":
                raise ValueError("cannot parse entry")

        async with EventBus(on_error=reported.append) as bus:
            bus.subscribe("coaching.entries.created", broken)
            bus.subscribe("coaching.entries.created", lambda e: healthy.append(e.seq))
            for data in ["ok", "poison", "ok"]:
                await bus.publish("coaching.entries.created", data)  # never raises
        return bus, healthy

    bus, healthy = run(scenario())
    assert healthy == [1, 2, 3]
    assert [(f.subscriber, f.event.seq, str(f.error)) for f in bus.failures] == [
        ("broken", 2, "cannot parse entry")
    ]
    assert reported == bus.failures
    assert "handler broken failed on coaching.entries.created #2" in caplog.text


def test_a_failing_error_callback_does_not_stop_the_worker(caplog):
    def reporter(failure):
        raise RuntimeError("pager is down")

    async def scenario():
        handled: list[int] = []

        def flaky(event: Event) -> None:
            handled.append(event.seq)
            raise ValueError("boom")

        async with EventBus(on_error=reporter) as bus:
            bus.subscribe("coaching.goals", flaky)
            for _ in range(3):
                await bus.publish("coaching.goals")
        return handled

    assert run(scenario()) == [1, 2, 3]
    assert "on_error callback failed for flaky" in caplog.text


def test_each_subscriber_sees_events_in_publish_order_even_when_handlers_yield():
    async def scenario():
        seen: list[int] = []

        async def handler(event: Event) -> None:
            for _ in range(event.data % 3):
                await asyncio.sleep(0)
            seen.append(event.data)

        async with EventBus(mailbox_size=8) as bus:
            bus.subscribe("coaching.goals", handler)
            for i in range(500):
                await bus.publish("coaching.goals", i)
        return seen

    assert run(scenario()) == list(range(500))


def test_unsubscribe_stops_new_deliveries_but_finishes_those_already_delivered():
    async def scenario():
        release = asyncio.Event()
        seen: list[int] = []

        async def handler(event: Event) -> None:
            await release.wait()
            seen.append(event.data)

        async with EventBus() as bus:
            subscription = bus.subscribe("coaching.goals", handler)
            await bus.publish("coaching.goals", 1)
            await bus.publish("coaching.goals", 2)
            subscription.unsubscribe()
            subscription.unsubscribe()  # a second call is harmless
            await bus.publish("coaching.goals", 3)
            release.set()
            await subscription.aclose()
        return seen, subscription

    seen, subscription = run(scenario())
    assert seen == [1, 2]
    assert subscription.active is False


def test_the_subscription_context_manager_unsubscribes_on_exit():
    async def scenario():
        seen: list[int] = []
        async with EventBus() as bus:
            async with bus.subscribe("coaching.goals", lambda e: seen.append(e.data)):
                await bus.publish("coaching.goals", 1)
            await bus.publish("coaching.goals", 2)
            assert bus._subscriptions == []
        return seen

    assert run(scenario()) == [1]


def test_close_drains_every_mailbox_and_then_refuses_publishes():
    async def scenario():
        handled: list[int] = []

        async def slow(event: Event) -> None:
            await asyncio.sleep(0)
            handled.append(event.data)

        bus = EventBus()
        for _ in range(3):
            bus.subscribe("coaching.entries.*", slow)
        for i in range(100):
            await bus.publish("coaching.entries.created", i)
        await bus.close()
        with pytest.raises(BusClosedError, match="refusing to publish on 'coaching.goals'"):
            await bus.publish("coaching.goals", 0)
        with pytest.raises(BusClosedError, match="cannot subscribe to 'coaching.goals'"):
            bus.subscribe("coaching.goals", slow)
        return handled

    handled = run(scenario())
    assert len(handled) == 300
    assert sorted(set(handled)) == list(range(100))


def test_a_full_mailbox_makes_the_publisher_wait_instead_of_dropping():
    async def scenario():
        release = asyncio.Event()
        seen: list[int] = []

        async def blocked(event: Event) -> None:
            await release.wait()
            seen.append(event.data)

        async with EventBus(mailbox_size=2) as bus:
            bus.subscribe("coaching.goals", blocked)
            for i in range(3):  # one in the handler, two in the mailbox
                await bus.publish("coaching.goals", i)
            fourth = asyncio.create_task(bus.publish("coaching.goals", 3))
            for _ in range(10):
                await asyncio.sleep(0)
            waited = not fourth.done()
            release.set()
            await fourth
        return waited, seen

    assert run(scenario()) == (True, [0, 1, 2, 3])


def test_join_waits_for_every_handler():
    async def scenario():
        done: list[int] = []

        async def handler(event: Event) -> None:
            await asyncio.sleep(0)
            done.append(event.seq)

        async with EventBus() as bus:
            bus.subscribe("coaching.#", handler)
            for _ in range(20):
                await bus.publish("coaching.goals")
            await bus.join()
            return len(done)

    assert run(scenario()) == 20


# A random program of subscribes, unsubscribes, publishes and yields.
PATTERNS = ["coaching.goals", "coaching.*", "coaching.#", "system.#", "*.agent.*"]
CHANNELS = ["coaching.goals", "coaching.entries", "coaching.entries.created", "system.agent.register"]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("subscribe"), st.sampled_from(PATTERNS)),
        st.tuples(st.just("unsubscribe"), st.integers(0, 10)),
        st.tuples(st.just("publish"), st.sampled_from(CHANNELS)),
        st.tuples(st.just("yield"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_each_subscriber_gets_exactly_what_was_published_while_it_was_subscribed(program):
    async def scenario():
        received: list[list[int]] = []
        expected: list[list[int]] = []
        subscriptions = []
        async with EventBus(mailbox_size=4) as bus:
            for op, arg in program:
                if op == "subscribe":
                    log: list[int] = []
                    received.append(log)
                    expected.append([])
                    subscriptions.append(
                        (bus.subscribe(arg, lambda e, log=log: log.append(e.seq)), arg)
                    )
                elif op == "unsubscribe" and subscriptions:
                    subscriptions[arg % len(subscriptions)][0].unsubscribe()
                elif op == "publish":
                    event = await bus.publish(arg)
                    for index, (sub, pattern) in enumerate(subscriptions):
                        if sub.active and matches(parse_channel(pattern, pattern=True),
                                                  parse_channel(arg)):
                            expected[index].append(event.seq)
                elif op == "yield":
                    for _ in range(arg):
                        await asyncio.sleep(0)
        return received, expected

    received, expected = run(scenario())
    assert received == expected


def test_the_demo_shows_isolation_concurrency_and_a_refused_publish(capsys):
    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "registry       : reflection-agent registered"
    assert lines.index("goal tracker   : entry #2 mentions 'run 5 km'") < lines.index(
        "mood agent     : entry #2 sounds hopeful"
    )
    assert "failure report : broken_agent on #2: model endpoint returned 503" in lines
    assert lines[-2].startswith("after close    : bus is closed")
    assert lines[-1] == "failures kept  : 1"
