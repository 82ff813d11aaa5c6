"""Tests of the in-memory event bus: routing, concurrency, isolation, order, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.fundamentals.core_concepts_event_bus import (
    BusClosedError,
    Event,
    EventBus,
    HandlerFailure,
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
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("event_bus", "ERROR",
         "handler broken failed on coaching.entries.created #2: ValueError('cannot parse entry')")
    ]


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
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        "on_error callback failed for flaky"] * 3


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
            subscription = bus.subscribe("coaching.goals", lambda e: seen.append(e.data))
            async with subscription as entered:
                await bus.publish("coaching.goals", 1)
            await bus.publish("coaching.goals", 2)
            assert bus._subscriptions == []
        return seen, entered is subscription, subscription.active

    assert run(scenario()) == ([1], True, False)


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
    assert capsys.readouterr().out.splitlines() == [
        "registry       : reflection-agent registered",
        "publisher      : entry #2 published, moving on",
        "goal tracker   : entry #2 mentions 'run 5 km'",
        "failure report : broken_agent on #2: model endpoint returned 503",
        "mood agent     : entry #2 sounds hopeful",
        "after close    : bus is closed: refusing to publish on 'coaching.entries.created'",
        "failures kept  : 1",
    ]


def test_the_module_runs_as_a_script_and_prints_only_the_demo():
    script = Path(__file__).parents[2] / "snippets" / "fundamentals" / "core_concepts_event_bus.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=False, cwd=script.parent)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[1] == "publisher      : entry #2 published, moving on"
    assert len(done.stdout.splitlines()) == 7


# --- Issue 20: order under backpressure, closing during a wait, the route cache ---

STRESS_PATTERNS = {"all": "#", "coaching": "coaching.#", "goals": "coaching.goals",
                   "agents": "*.agent.*", "entries": "coaching.entries.*"}
STRESS_CHANNELS = ["coaching.goals", "coaching.entries.created", "system.agent.register",
                   "coaching.entries.deleted"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mailbox_size", [1, 2])
def test_concurrent_publishers_under_backpressure_keep_every_subscriber_in_seq_order(
        seed, mailbox_size):
    """Four publishers, five subscribers, tiny mailboxes, handlers and publishers that
    yield a seeded random number of times (asyncio is deterministic for a given seed)."""
    rng = random.Random(seed)

    async def scenario():
        seen: dict[str, list[int]] = {key: [] for key in STRESS_PATTERNS}
        published: list[Event] = []

        async def handler(event: Event, key: str) -> None:
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            seen[key].append(event.seq)

        async def publisher(number: int) -> None:
            for i in range(150):
                published.append(await bus.publish(rng.choice(STRESS_CHANNELS), (number, i)))
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)

        async with EventBus(mailbox_size=mailbox_size) as bus:
            for key, pattern in STRESS_PATTERNS.items():
                bus.subscribe(pattern, lambda e, key=key: handler(e, key), name=key)
            await asyncio.gather(*(publisher(n) for n in range(4)))
        return seen, published

    seen, published = run(scenario())
    assert sorted(e.seq for e in published) == list(range(1, 601))
    for key, pattern in STRESS_PATTERNS.items():
        wanted = parse_channel(pattern, pattern=True)
        expected = sorted(e.seq for e in published if matches(wanted, parse_channel(e.channel)))
        assert seen[key] == expected, key
    assert len(seen["all"]) == 600


def test_each_publisher_sees_its_own_events_numbered_in_the_order_it_published_them():
    async def scenario():
        async def publisher(number: int) -> list[tuple[int, int]]:
            return [((await bus.publish("coaching.goals", i)).seq, i) for i in range(50)]

        async with EventBus(mailbox_size=1) as bus:
            bus.subscribe("coaching.goals", lambda e: None)
            return await asyncio.gather(*(publisher(n) for n in range(3)))

    for numbered in run(scenario()):
        assert [i for _, i in numbered] == list(range(50))
        assert [seq for seq, _ in numbered] == sorted(seq for seq, _ in numbered)


def test_unsubscribing_while_a_publisher_waits_on_the_full_mailbox_still_handles_its_event():
    async def scenario():
        release = asyncio.Event()
        started = asyncio.Event()
        handled: list[int] = []

        async def blocked(event: Event) -> None:
            started.set()
            await release.wait()
            handled.append(event.data)

        async with EventBus(mailbox_size=1) as bus:
            subscription = bus.subscribe("coaching.goals", blocked)
            await bus.publish("coaching.goals", 1)
            await started.wait()  # 1 is in the handler
            await bus.publish("coaching.goals", 2)  # 2 fills the mailbox
            waiting = asyncio.create_task(bus.publish("coaching.goals", 3))
            await asyncio.sleep(0)
            assert not waiting.done()
            subscription.unsubscribe()
            release.set()
            event = await waiting
            await subscription.aclose()
        return event, handled

    event, handled = run(scenario())
    assert (event.seq, event.data) == (3, 3)
    assert handled == [1, 2, 3]


def test_closing_the_bus_while_publishers_wait_handles_every_event_they_were_told_was_delivered():
    async def scenario():
        release = asyncio.Event()
        handled: list[int] = []

        async def blocked(event: Event) -> None:
            await release.wait()
            handled.append(event.data)

        bus = EventBus(mailbox_size=1)
        bus.subscribe("coaching.goals", blocked)
        waiting = [asyncio.create_task(bus.publish("coaching.goals", i)) for i in range(5)]
        await asyncio.sleep(0)
        closing = asyncio.create_task(bus.close())
        await asyncio.sleep(0)
        release.set()
        events = await asyncio.gather(*waiting)
        await closing
        return [e.data for e in events], handled

    returned, handled = run(scenario())
    assert returned == [0, 1, 2, 3, 4]
    assert handled == [0, 1, 2, 3, 4]


def test_close_and_join_wait_for_a_subscription_that_was_unsubscribed_but_is_still_draining():
    async def scenario():
        release = asyncio.Event()
        handled: list[int] = []

        async def slow(event: Event) -> None:
            await release.wait()
            handled.append(event.data)

        bus = EventBus()
        bus.subscribe("coaching.goals", slow).unsubscribe()  # nothing queued: stops at once
        draining = bus.subscribe("coaching.goals", slow)
        for i in range(3):
            await bus.publish("coaching.goals", i)
        draining.unsubscribe()
        joined = asyncio.create_task(bus.join())
        await asyncio.sleep(0)
        assert not joined.done()  # events 0-2 are not handled yet
        release.set()
        await joined
        assert handled == [0, 1, 2]
        assert bus._unsubscribed == set()  # drained for good: not kept
        for i in range(3, 6):
            await bus.publish("coaching.goals", i)  # nobody subscribes any more
        await bus.close()
        return handled

    assert run(scenario()) == [0, 1, 2]


def test_close_waits_for_an_unsubscribed_subscription_to_drain():
    async def scenario():
        release = asyncio.Event()
        handled: list[int] = []

        async def slow(event: Event) -> None:
            await release.wait()
            handled.append(event.data)

        bus = EventBus()
        subscription = bus.subscribe("coaching.goals", slow)
        for i in range(3):
            await bus.publish("coaching.goals", i)
        subscription.unsubscribe()
        closing = asyncio.create_task(bus.close())
        await asyncio.sleep(0)
        release.set()
        await closing
        assert bus._unsubscribed == set()
        return list(handled)  # what was handled by the time close() returned

    assert run(scenario()) == [0, 1, 2]


def test_the_route_cache_stays_at_its_bound_with_ten_thousand_distinct_channels():
    async def scenario():
        everyone: list[str] = []
        user_7: list[str] = []
        async with EventBus() as bus:
            bus.subscribe("user.*.entries", lambda e: everyone.append(e.channel))
            bus.subscribe("user.7.#", lambda e: user_7.append(e.channel))
            for i in range(10_000):
                await bus.publish(f"user.{i}.entries")
            await bus.publish("user.7.entries")  # evicted long ago: routed afresh
            cached = len(bus._routes)
        return everyone, user_7, cached

    everyone, user_7, cached = run(scenario())
    assert cached == 1024
    assert everyone == [f"user.{i}.entries" for i in range(10_000)] + ["user.7.entries"]
    assert user_7 == ["user.7.entries", "user.7.entries"]


def test_a_slow_subscriber_slows_publishers_only_once_its_mailbox_holds_mailbox_size_events():
    """The boundary of "delays only itself": N events waiting is fine, the next publish
    on one of its channels waits, other subscribers already have that event, and
    publishes it does not subscribe to never wait."""

    async def scenario():
        release, started = asyncio.Event(), asyncio.Event()
        slow_seen: list[int] = []
        fast_seen: list[int] = []

        async def slow(event: Event) -> None:
            started.set()
            await release.wait()
            slow_seen.append(event.seq)

        async with EventBus(mailbox_size=3) as bus:
            slow_subscription = bus.subscribe("coaching.#", slow)
            bus.subscribe("coaching.goals", lambda e: fast_seen.append(e.seq))
            await bus.publish("coaching.goals")  # 1: taken by the handler
            await started.wait()
            for _ in range(3):  # 2, 3, 4 fill the mailbox of 3 without waiting
                task = asyncio.create_task(bus.publish("coaching.goals"))
                await asyncio.sleep(0)
                assert task.done()
            fifth = asyncio.create_task(bus.publish("coaching.goals"))
            sixth = asyncio.create_task(bus.publish("coaching.entries"))
            other = asyncio.create_task(bus.publish("system.agent.register"))
            await asyncio.sleep(0)
            waiting = (fifth.done(), sixth.done(), other.done())
            await asyncio.sleep(0)
            fast_before_release = list(fast_seen)
            line = [event.seq for event, _ in slow_subscription._line]
            release.set()
            events = await asyncio.gather(fifth, sixth, other)
        return waiting, fast_before_release, line, [e.seq for e in events], slow_seen

    waiting, fast_before_release, line, seqs, slow_seen = run(scenario())
    assert waiting == (False, False, True)
    assert fast_before_release == [1, 2, 3, 4, 5]  # the fast one got #5 while it waited
    assert line == [5, 6]
    assert seqs == [5, 6, 7]
    assert slow_seen == [1, 2, 3, 4, 5, 6]


def test_cancelling_a_waiting_publish_withdraws_the_event_only_where_it_was_waiting():
    async def scenario():
        release, started = asyncio.Event(), asyncio.Event()
        slow_seen: list[int] = []
        fast_seen: list[int] = []

        async def slow(event: Event) -> None:
            started.set()
            await release.wait()
            slow_seen.append(event.data)

        async with EventBus(mailbox_size=1) as bus:
            subscription = bus.subscribe("coaching.goals", slow)
            bus.subscribe("coaching.goals", lambda e: fast_seen.append(e.data))
            await bus.publish("coaching.goals", "a")
            await started.wait()
            await bus.publish("coaching.goals", "b")  # fills the slow mailbox
            given_up = asyncio.create_task(bus.publish("coaching.goals", "c"))
            kept = asyncio.create_task(bus.publish("coaching.goals", "d"))
            await asyncio.sleep(0)
            given_up.cancel()
            await asyncio.sleep(0)
            line = [event.data for event, _ in subscription._line]
            release.set()
            event = await kept
            with pytest.raises(asyncio.CancelledError):
                await given_up
        return line, event.data, slow_seen, fast_seen

    line, kept, slow_seen, fast_seen = run(scenario())
    assert line == ["d"]  # withdrawn at once, not left to use memory
    assert kept == "d"
    assert slow_seen == ["a", "b", "d"]
    assert fast_seen == ["a", "b", "c", "d"]  # it already had c before the publish gave up


def test_a_delivery_cancelled_just_as_room_frees_up_is_skipped_and_the_worker_carries_on():
    async def scenario():
        release, started = asyncio.Event(), asyncio.Event()
        seen: list[str] = []

        async def slow(event: Event) -> None:
            started.set()
            await release.wait()
            seen.append(event.data)

        async with EventBus(mailbox_size=1) as bus:
            bus.subscribe("coaching.goals", slow)
            await bus.publish("coaching.goals", "a")
            await started.wait()
            await bus.publish("coaching.goals", "b")
            given_up = asyncio.create_task(bus.publish("coaching.goals", "c"))
            kept = asyncio.create_task(bus.publish("coaching.goals", "d"))
            await asyncio.sleep(0)
            release.set()  # the worker frees room before the withdrawal runs
            given_up.cancel()
            await kept
        return seen

    assert run(scenario()) == ["a", "b", "d"]


def test_a_subscription_refuses_deliveries_once_unsubscribed_and_routes_by_its_pattern():
    async def scenario():
        async with EventBus() as bus:
            subscription = bus.subscribe("coaching.*", lambda e: None, name="coach")
            routed = (subscription.matches("coaching.goals"),
                      subscription.matches(("coaching", "goals")),
                      subscription.matches("coaching.goals.set"),
                      subscription.matches(("system", "agent")))
            assert subscription.deliver(Event("coaching.goals", None, 1)) is None
            await subscription.join()
            subscription.unsubscribe()
            with pytest.raises(
                    RuntimeError,
                    match=r"^subscription 'coach' is closed: cannot deliver 'coaching.goals' #2$"):
                subscription.deliver(Event("coaching.goals", None, 2))
            with pytest.raises(ValueError, match="invalid channel 'Coaching'"):
                subscription.matches("Coaching")
        return routed

    assert run(scenario()) == (True, True, False, False)


def test_subscription_join_waits_for_the_handler_and_the_line():
    async def scenario():
        release = asyncio.Event()
        seen: list[int] = []

        async def slow(event: Event) -> None:
            await release.wait()
            seen.append(event.data)

        async with EventBus(mailbox_size=1) as bus:
            subscription = bus.subscribe("coaching.goals", slow)
            await subscription.join()  # nothing delivered yet: returns at once
            publishers = [asyncio.create_task(bus.publish("coaching.goals", i)) for i in range(3)]
            joined = asyncio.create_task(subscription.join())
            await asyncio.sleep(0)
            assert not joined.done()
            release.set()
            await joined
            handled_at_join = list(seen)
            await asyncio.gather(*publishers)
        return handled_at_join

    assert run(scenario()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mailbox_size": 0}, ValueError, "mailbox_size must be at least 1, not 0"),
        ({"mailbox_size": -5}, ValueError, "mailbox_size must be at least 1, not -5"),
        ({"mailbox_size": 2.5}, TypeError, "mailbox_size must be an int, not float"),
        ({"mailbox_size": True}, TypeError, "mailbox_size must be an int, not bool"),
        ({"route_cache_size": -1}, ValueError, "route_cache_size must be at least 0, not -1"),
        ({"route_cache_size": None}, TypeError, "route_cache_size must be an int, not NoneType"),
    ],
)
def test_bad_sizes_are_refused_by_name(kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        EventBus(**kwargs)


def test_the_smallest_sizes_are_accepted():
    async def scenario():
        seen: list[int] = []
        async with EventBus(mailbox_size=1, route_cache_size=0) as bus:
            bus.subscribe("coaching.goals", lambda e: seen.append(e.seq))
            for _ in range(3):
                await bus.publish("coaching.goals")
            cached = len(bus._routes)
        return seen, cached, bus.mailbox_size, bus.route_cache_size

    assert run(scenario()) == ([1, 2, 3], 0, 1, 0)


def test_the_route_cache_evicts_the_least_recently_used_channel():
    async def scenario():
        seen: list[str] = []
        async with EventBus(route_cache_size=3) as bus:
            bus.subscribe("#", lambda e: seen.append(e.channel))
            for channel in ["a", "b", "c", "a", "d"]:
                await bus.publish(channel)
            cached = list(bus._routes)
        return cached, seen

    cached, seen = run(scenario())
    assert cached == ["c", "a", "d"]  # a was used again, so b went first
    assert seen == ["a", "b", "c", "a", "d"]


def test_subscribe_and_unsubscribe_invalidate_the_route_cache():
    async def scenario():
        seen: list[int] = []
        async with EventBus(route_cache_size=2) as bus:
            await bus.publish("coaching.goals")  # cached: nobody listens
            subscription = bus.subscribe("coaching.*", lambda e: seen.append(e.seq))
            assert len(bus._routes) == 0
            await bus.publish("coaching.goals")  # 2
            subscription.unsubscribe()
            assert len(bus._routes) == 0
            await bus.publish("coaching.goals")  # 3
        return seen

    assert run(scenario()) == [2]


def test_bad_input_loses_nothing_queued_and_takes_no_sequence_number():
    async def scenario():
        release = asyncio.Event()
        seen: list[int] = []

        async def slow(event: Event) -> None:
            await release.wait()
            seen.append(event.seq)

        async with EventBus() as bus:
            bus.subscribe("coaching.#", slow)
            await bus.publish("coaching.goals")
            with pytest.raises(ValueError, match="invalid channel 'coaching.Goals'"):
                await bus.publish("coaching.Goals")
            with pytest.raises(TypeError, match="channel must be a str, not NoneType"):
                await bus.publish(None)
            cached = list(bus._routes)
            last = await bus.publish("coaching.entries")
            release.set()
        return cached, last.seq, seen

    assert run(scenario()) == (["coaching.goals"], 2, [1, 2])



def test_events_and_failure_reports_are_immutable_and_slotted():
    event = Event("coaching.goals", {"goal": "run"}, 1)
    failure = HandlerFailure("coach", event, ValueError("boom"))
    for record, field in ((event, "seq"), (failure, "subscriber")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, 2)
        assert not hasattr(record, "__dict__")


def test_the_invalid_channel_message_says_what_a_segment_may_hold():
    with pytest.raises(ValueError) as channel_error:
        parse_channel("coaching.Goals")
    with pytest.raises(ValueError) as pattern_error:
        parse_channel("coaching.go*", pattern=True)
    assert str(channel_error.value) == (
        "invalid channel 'coaching.Goals': segment 'Goals' must use a-z, 0-9 and _")
    assert str(pattern_error.value) == (
        "invalid channel 'coaching.go*': segment 'go*' must use a-z, 0-9 and _ or a lone * or #")


def test_a_handler_that_awaits_a_cancelled_task_is_reported_and_the_worker_carries_on():
    async def scenario():
        handled: list[int] = []

        async def lookup() -> None:
            await asyncio.Event().wait()  # never finishes on its own

        async def handler(event: Event) -> None:
            if event.data == 1:
                model_call = asyncio.create_task(lookup())
                await asyncio.sleep(0)
                model_call.cancel()  # someone else cancels what this handler awaits
                await model_call
            handled.append(event.data)

        async with EventBus(mailbox_size=1) as bus:
            bus.subscribe("coaching.goals", handler)
            for i in range(4):
                await bus.publish("coaching.goals", i)
        return handled, [(f.subscriber, f.event.data, type(f.error).__name__)
                         for f in bus.failures]

    assert run(scenario()) == ([0, 2, 3], [("handler", 1, "CancelledError")])


def test_cancelling_a_worker_itself_stops_it_instead_of_being_reported():
    """What asyncio.run does to tasks left running when it ends."""

    async def scenario():
        started = asyncio.Event()

        async def blocked(event: Event) -> None:
            started.set()
            await asyncio.Event().wait()

        bus = EventBus()
        bus.subscribe("coaching.goals", blocked)
        await bus.publish("coaching.goals")
        await started.wait()
        workers = [t for t in asyncio.all_tasks() if t.get_name() == "blocked"]
        for worker in workers:
            worker.cancel()
        done, pending = await asyncio.wait(workers, timeout=5)  # a safety net only
        return [t.cancelled() for t in done], len(pending), bus.failures

    assert run(scenario()) == ([True], 0, [])


def test_each_event_taken_out_admits_exactly_one_waiting_delivery():
    async def scenario():
        gates: dict[int, asyncio.Event] = {}

        async def gated(event: Event) -> None:
            await gates.setdefault(event.seq, asyncio.Event()).wait()

        async with EventBus(mailbox_size=1) as bus:
            subscription = bus.subscribe("coaching.goals", gated)
            await bus.publish("coaching.goals")  # 1: in the mailbox
            await bus.publish("coaching.goals")  # 2: waits in line until 1 is taken
            waiting = [asyncio.create_task(bus.publish("coaching.goals")) for _ in range(3)]
            await asyncio.sleep(0)
            before = ([e.seq for e in subscription._mailbox],
                      [e.seq for e, _ in subscription._line])
            gates.setdefault(1, asyncio.Event()).set()
            await waiting[0]
            after = ([e.seq for e in subscription._mailbox],
                     [e.seq for e, _ in subscription._line], [t.done() for t in waiting])
            for seq in range(2, 6):
                gates.setdefault(seq, asyncio.Event()).set()
            await asyncio.gather(*waiting)
        return before, after

    before, after = run(scenario())
    assert before == ([2], [3, 4, 5])
    assert after == ([3], [4, 5], [True, False, False])


def test_the_default_mailbox_holds_1024_events_before_publish_waits():
    async def scenario():
        release = asyncio.Event()

        async def blocked(event: Event) -> None:
            await release.wait()

        async with EventBus() as bus:
            subscription = bus.subscribe("coaching.goals", blocked)
            for _ in range(1024):  # the worker has not run yet: all stay in the mailbox
                assert subscription.deliver(Event("coaching.goals", None, 0)) is None
            overflow = subscription.deliver(Event("coaching.goals", None, 0))
            release.set()
            await overflow
        return bus.mailbox_size, bus.route_cache_size

    assert run(scenario()) == (1024, 1024)


def test_a_subscription_whose_worker_was_cancelled_while_parked_can_still_be_closed():
    """Cancelling the worker task from outside (a task group tearing down) leaves its
    parked wake-up future cancelled; unsubscribing must not trip over it."""
    async def scenario() -> bool:
        bus = EventBus()
        subscription = bus.subscribe("coaching.goals", lambda event: None)
        await asyncio.sleep(0)  # the worker parks on an empty mailbox
        subscription._worker.cancel()
        await asyncio.wait([subscription._worker])
        subscription.unsubscribe()  # wakes a future that is already cancelled
        return subscription._worker.cancelled()

    assert asyncio.run(scenario()) is True
