"""The in-memory request-reply module: the demo, and the correlator every backend shares."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging import request_reply_nats, request_reply_rabbitmq
from snippets.messaging.request_reply_in_memory import (
    Correlator,
    Envelope,
    InMemoryBroker,
    RequestTimeout,
    main,
)
from tests.messaging.conftest import run
from tests.messaging.test_request_reply_contract import DEMO_OUTPUT

# The three modules carry the same correlator (each must run on its own); test all three.
CORRELATORS = [Correlator, request_reply_rabbitmq.Correlator, request_reply_nats.Correlator]


def reply(cid: str | None, body: bytes = b"") -> Envelope:
    return Envelope(body, cid)


def test_the_demo_times_out_drops_the_late_reply_and_answers_the_next_request(capsys):
    run(main())
    assert capsys.readouterr().out == DEMO_OUTPUT


@pytest.mark.parametrize("make", CORRELATORS)
def test_a_correlator_tells_matched_late_duplicate_and_stray_replies_apart(make):
    async def scenario() -> tuple[list[str], Correlator, asyncio.Future]:
        c = make()
        answered, gave_up = c.expect("c-1"), c.expect("c-2")
        c.finish("c-2", "gave up")
        outcomes = [c.deliver(type_(c)("c-1", b"one")), c.deliver(type_(c)("c-2", b"two")),
                    c.deliver(type_(c)("c-1", b"again")), c.deliver(type_(c)("c-9", b"who?")),
                    c.deliver(type_(c)(None, b"no id"))]
        assert gave_up.cancelled()
        return outcomes, c, answered

    outcomes, c, answered = run(scenario())
    assert outcomes == ["matched", "late", "duplicate", "stray", "stray"]
    assert answered.result().body == b"one"
    assert [(r.correlation_id, r.body) for r in c.late] == [("c-2", b"two")]
    assert (c.duplicates, c.strays) == (1, 2)


def type_(correlator: Correlator):
    """The Envelope class of the module the correlator comes from."""
    module = type(correlator).__module__
    envelope = {request_reply_rabbitmq.__name__: request_reply_rabbitmq.Envelope,
                request_reply_nats.__name__: request_reply_nats.Envelope}.get(module, Envelope)
    return lambda cid, body: envelope(body, cid)


@pytest.mark.parametrize("make", CORRELATORS)
def test_a_correlation_id_is_never_reused_and_a_request_never_sent_leaves_no_trace(make):
    async def scenario() -> None:
        c = make()
        c.expect("c-1")
        with pytest.raises(ValueError, match="correlation id 'c-1' was already used"):
            c.expect("c-1")
        c.finish("c-1", "not sent")
        c.expect("c-1")  # never sent, so free again
        c.finish("c-1", "answered")
        with pytest.raises(ValueError, match="already used"):
            c.expect("c-1")

    run(scenario())


@pytest.mark.parametrize("make", CORRELATORS)
def test_a_correlator_remembers_a_bounded_number_of_finished_ids(make):
    async def scenario() -> list[str]:
        c = make(remember=2)
        for n in range(1, 4):
            c.expect(f"c-{n}")
            c.finish(f"c-{n}", "gave up")
        return [c.deliver(type_(c)(f"c-{n}", b"")) for n in range(1, 4)]

    assert run(scenario()) == ["stray", "late", "late"]  # c-1 was forgotten


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2)), min_size=1, max_size=12),
       st.randoms(use_true_random=False))
def test_any_order_of_replies_reaches_only_the_request_it_answers(requests, rnd):
    """Each request times out or not, and gets 0 to 2 replies; replies come in any order."""
    async def scenario() -> None:
        c = Correlator()
        futures = {f"c-{i}": c.expect(f"c-{i}") for i in range(len(requests))}
        for i, (times_out, _) in enumerate(requests):
            if times_out:
                c.finish(f"c-{i}", "gave up")
        replies = [f"c-{i}" for i, (_, copies) in enumerate(requests) for _ in range(copies)]
        replies += ["stray-1"]
        rnd.shuffle(replies)
        for cid in replies:
            c.deliver(reply(cid, cid.encode()))
        for i, (times_out, copies) in enumerate(requests):
            future = futures[f"c-{i}"]
            if times_out:
                assert future.cancelled()
            elif copies:
                assert future.result().body == f"c-{i}".encode()
            else:
                assert not future.done()
        assert sorted(r.correlation_id for r in c.late) == sorted(
            f"c-{i}" for i, (t, copies) in enumerate(requests) if t for _ in range(copies))
        assert c.duplicates == sum(copies - 1 for t, copies in requests if not t and copies)
        assert c.strays == 1

    run(scenario())


def test_two_requesters_with_one_name_are_refused_because_their_ids_would_collide():
    async def scenario() -> None:
        broker = InMemoryBroker()
        await broker.requester("coach")
        with pytest.raises(ValueError, match="a requester named 'coach' already exists"):
            await broker.requester("coach")
        with pytest.raises(ValueError, match="invalid service name 'Coach!'"):
            await broker.requester("Coach!")

    run(scenario())


def test_a_requester_that_is_cancelled_counts_as_gave_up_and_its_reply_as_late():
    async def scenario() -> list[str]:
        broker, started, release = InMemoryBroker(), asyncio.Event(), asyncio.Event()

        async def slow(body: bytes) -> bytes:
            started.set()
            await release.wait()
            return body

        await broker.serve("slow", slow)
        coach = await broker.requester("coach")
        call = asyncio.create_task(coach.request("slow", b"x", timeout=30))
        await started.wait()  # the request is being handled
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        release.set()
        async with asyncio.timeout(5):
            while not coach.late:
                await asyncio.sleep(0.005)
        return [r.correlation_id for r in coach.late]

    assert run(scenario()) == ["coach-1"]


def test_a_reply_to_an_inbox_that_does_not_exist_is_dropped():
    async def scenario() -> None:
        broker = InMemoryBroker()
        await broker.reply("inbox.gone", Envelope(b"x", "gone-1"))  # no exception
        await broker.close()

    run(scenario())


def test_a_service_keeps_its_queue_while_one_of_two_responders_remains():
    async def scenario() -> bytes:
        broker = InMemoryBroker()

        async def echo(body: bytes) -> bytes:
            return body

        first = await broker.serve("echo", echo)
        await broker.serve("echo", echo)
        await first.stop()
        return await (await broker.requester()).request("echo", b"still", timeout=5)

    assert run(scenario()) == b"still"


def test_a_timeout_is_a_timeout_error_that_names_the_request():
    async def scenario() -> None:
        broker = InMemoryBroker()

        async def never(body: bytes) -> bytes:
            await asyncio.Event().wait()
            return body

        await broker.serve("never", never)
        coach = await broker.requester("coach")
        with pytest.raises(TimeoutError, match="no reply from 'never' to coach-1 within 0.05 s"):
            await coach.request("never", b"x", timeout=0.05)
        assert issubclass(RequestTimeout, TimeoutError)

    run(scenario())
