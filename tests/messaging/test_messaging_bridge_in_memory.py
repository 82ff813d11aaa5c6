"""The in-memory bridge: its demo, a property over crashes at random steps, and the
orders and inputs that break the guarantee (ack first, no id, a window that has passed)."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.messaging_bridge_in_memory import (
    Bridge,
    Crash,
    Message,
    SourceQueue,
    TargetStream,
    crash_at,
    entries,
    main,
    relay_ack_first,
)

EXPECTED = """\
ack first  : crashed after acking entry-3; target holds 4 of 5, entry-3 is lost
crash after consumed : killed after consumed of entry-3
  restarted: relayed 3, duplicates dropped 0; target holds 5 messages, 5 distinct
crash after published: killed after published of entry-3
  restarted: relayed 3, duplicates dropped 1; target holds 5 messages, 5 distinct
no id      : [b'no id'] set aside, 3 relayed
late       : restarted after the 120 s window, the target holds
             ['entry-1', 'entry-2', 'entry-2', 'entry-3']
"""


def test_the_demo_loses_with_ack_first_and_neither_loses_nor_duplicates_otherwise(capsys):
    main()
    assert capsys.readouterr().out == EXPECTED


crashes = st.lists(st.tuples(st.sampled_from(["consumed", "published"]), st.integers(1, 8)),
                   max_size=6)


@settings(max_examples=80, deadline=None)
@given(count=st.integers(0, 8), plan=crashes)
def test_any_sequence_of_crashes_and_restarts_delivers_every_message_once(count, plan):
    source, target = entries(count), TargetStream()
    duplicates, fired = 0, []
    for step, victim in plan:  # each crash kills one bridge; the next one restarts
        bridge = Bridge(source, target, crash_at(step, f"entry-{victim}"))
        try:
            bridge.relay_all()
        except Crash:
            source.connection_lost()
            fired.append(step)
        duplicates += bridge.duplicates
    final = Bridge(source, target)
    final.relay_all()
    ids = [msg_id for msg_id, _ in target.messages]
    assert ids == [f"entry-{i}" for i in range(1, count + 1)]  # all, once, in order
    assert not source.ready and not source.unacked
    # Each crash between publish and ack costs one publish that the target drops.
    assert duplicates + final.duplicates == fired.count("published")


def test_acknowledging_before_publishing_loses_the_message_a_crash_interrupts():
    source, target = entries(3), TargetStream()
    try:
        relay_ack_first(source, target, crash_at("acked", "entry-2"))
    except Crash:
        source.connection_lost()
    relay_ack_first(source, target, lambda step, msg_id: None)
    assert [msg_id for msg_id, _ in target.messages] == ["entry-1", "entry-3"]


def test_a_message_without_an_id_is_set_aside_and_does_not_stop_the_others():
    source = SourceQueue(deque([Message(None, b"a"), Message("", b"b"), Message("x", b"c")]))
    target = TargetStream()
    Bridge(source, target).relay_all()
    assert [m.body for m in source.dead_letters] == [b"a", b"b"]
    assert target.messages == [("x", b"c")]


def test_the_target_forgets_an_id_only_after_its_window():
    target = TargetStream(window=10)
    assert target.publish(b"1", "a", now=0) is False
    assert target.publish(b"1", "a", now=9.9) is True   # inside the window: dropped
    assert target.publish(b"1", "a", now=10) is False  # the window has passed: stored
    assert target.publish(b"2", None, now=0) is False  # no id: never deduplicated
    assert [msg_id for msg_id, _ in target.messages] == ["a", "a", None]
