"""No idempotency: redeliveries inflate the count; the id in the same transaction prevents it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.common_mistakes_no_idempotency import (
    CountingTracker,
    Crash,
    Event,
    IdempotentTracker,
    deliver,
    main,
)


def test_the_demo_counts_five_sessions_instead_of_three_without_idempotency(capsys):
    main()
    assert capsys.readouterr().out == (
        "CountingTracker  : 5 deliveries of 3 sessions -> Ana has 5\n"
        "IdempotentTracker: 5 deliveries of 3 sessions -> Ana has 3\n")


# Events of two users; the producer may send any of them more than once.
streams = st.lists(st.tuples(st.integers(1, 8), st.sampled_from(["ana", "ben"])),
                   min_size=1, max_size=25)


def events_of(pairs):
    user_of = {}
    events = []
    for n, user in pairs:
        user_of.setdefault(n, user)  # one id is always one event of one user
        events.append(Event(f"ev-{n}", user_of[n]))
    return events


def truth(events):
    distinct = {e.id: e.user for e in events}
    return {u: sum(1 for x in distinct.values() if x == u) for u in ("ana", "ben")}


@settings(max_examples=150, deadline=None)
@given(streams, st.sets(st.integers(1, 8)))
def test_broken_counts_every_delivery_so_any_duplicate_inflates_progress(pairs, lost_acks):
    events = events_of(pairs)
    tracker = CountingTracker()
    deliveries = deliver(tracker, events, {f"ev-{n}" for n in lost_acks})
    counted = tracker.sessions("ana") + tracker.sessions("ben")
    assert counted == deliveries
    if deliveries > len({e.id for e in events}):
        assert counted > sum(truth(events).values())


@settings(max_examples=150, deadline=None)
@given(streams, st.sets(st.integers(1, 8)), st.sets(st.integers(1, 8)))
def test_fixed_counts_each_event_once_whatever_is_redelivered_or_crashes_mid_transaction(
        pairs, lost_acks, crash_mid):
    events = events_of(pairs)
    pending = {f"ev-{n}" for n in crash_mid}

    def crash_between(event: Event) -> None:
        if event.id in pending:
            pending.discard(event.id)
            raise Crash(f"killed after recording {event.id}, before counting it")

    tracker = IdempotentTracker(crash_between)
    deliver(tracker, events, {f"ev-{n}" for n in lost_acks})
    assert {u: tracker.sessions(u) for u in ("ana", "ben")} == truth(events)
    assert tracker.db.execute("SELECT count(*) FROM processed").fetchone()[0] == len(
        {e.id for e in events})


def test_a_crash_between_recording_the_id_and_counting_keeps_neither():
    def crash(event: Event) -> None:
        raise Crash("killed mid-transaction")

    tracker = IdempotentTracker(crash)
    with pytest.raises(Crash):
        tracker.handle(Event("ev-1", "ana"))
    assert tracker.sessions("ana") == 0
    assert tracker.db.execute("SELECT count(*) FROM processed").fetchone() == (0,)
    tracker.crash_between = lambda event: None
    tracker.handle(Event("ev-1", "ana"))  # the redelivery is not mistaken for a duplicate
    assert tracker.sessions("ana") == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"id": "", "user": "ana"}, "event id must be a non-empty str, not ''"),
    ({"id": "ev-1", "user": None}, "event user must be a non-empty str, not None"),
])
def test_an_event_without_an_id_or_user_is_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Event(**kwargs)
