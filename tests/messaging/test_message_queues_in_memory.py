"""The in-memory queue: its demo, and a property over random receive/ack/close runs."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.message_queues_in_memory import InMemoryBroker, check, main
from tests.messaging.conftest import run

EXPECTED = """\
reflection: entry-1, entry-2, entry-3, entry-4, entry-5, entry-6
coaches   : 6 handled, 6 distinct
crash     : acked entry-7, redelivered [('entry-8', 2)]
"""


def test_the_demo_shares_fans_out_and_redelivers(capsys):
    run(main())
    assert capsys.readouterr().out == EXPECTED


def test_names_and_bodies_are_checked_before_anything_is_stored():
    for bad in ("", "a b", "Entries", ".entries", "entries.", 7):
        try:
            check(bad)
        except ValueError as error:
            assert "invalid name" in str(error)
        else:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{bad!r} was accepted")


operations = st.lists(st.tuples(st.sampled_from(["receive", "ack", "close"]),
                                st.integers(0, 2), st.integers(1, 4)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(messages=st.integers(1, 12), steps=operations)
def test_whatever_consumers_do_every_message_is_acked_once_and_never_after(messages, steps):
    """Receive, ack and close in any order: nothing acked comes back, nothing is lost."""

    async def scenario():
        broker = InMemoryBroker(lease=60)
        topic, group = "coaching.entries", "coaches"
        consumers = [await broker.consumer(topic, group, f"c{i}") for i in range(3)]
        for n in range(messages):
            await broker.publish(topic, f"entry-{n}".encode())
        held: dict[int, list] = {0: [], 1: [], 2: []}
        acked: list[bytes] = []
        for action, who, count in steps:
            if action == "receive":
                got = await consumers[who].receive(max_messages=count, timeout=0)
                assert not {m.body for m in got} & set(acked), "an acked message came back"
                held[who] += got
            elif action == "ack":
                done, held[who] = held[who][:count], held[who][count:]
                await consumers[who].ack(done)
                acked += [m.body for m in done]
            else:
                await consumers[who].close()
                held[who] = []
                consumers[who] = await broker.consumer(topic, group, f"c{who}")
        for who in held:  # everyone still holding something leaves
            await consumers[who].close()
        rest = await (await broker.consumer(topic, group, "last")).receive(messages, timeout=0)
        return acked, [m.body for m in rest]

    acked, rest = run(scenario())
    assert len(acked) == len(set(acked))
    assert sorted(acked + rest) == sorted(f"entry-{n}".encode() for n in range(messages))


def test_a_waiting_consumer_wakes_when_a_message_arrives():
    async def scenario():
        broker = InMemoryBroker()
        reader = await broker.consumer("coaching.entries", "coaches", "reader")
        waiting = asyncio.create_task(reader.receive(timeout=30))
        await asyncio.sleep(0)  # let it start waiting
        await broker.publish("coaching.entries", b"entry-1")
        return await waiting

    assert [m.body for m in run(scenario(), timeout=5)] == [b"entry-1"]
