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


def test_fixed_consumers_racing_on_one_database_count_each_of_600_events_once(tmp_path):
    import threading

    path = str(tmp_path / "progress.db")
    IdempotentTracker(path=path)  # create the tables before the race
    users = ("ana", "ben", "caro")
    events = [Event(f"ev-{n}", users[n % 3]) for n in range(1, 601)]
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def consumer(index: int) -> None:
        tracker = IdempotentTracker(path=path)  # its own connection, as a process would have
        mine = events[index::2] + events[index::3]  # every event reaches two or three consumers
        start.wait()
        try:
            deliver(tracker, mine, crash_before_ack={e.id for e in mine[::7]})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=consumer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    tracker = IdempotentTracker(path=path)
    assert [tracker.sessions(u) for u in users] == [200, 200, 200]
    assert tracker.db.execute("SELECT count(*) FROM processed").fetchone() == (600,)


def test_broken_consumers_sharing_one_database_count_every_delivery(tmp_path):
    path = str(tmp_path / "progress.db")
    events = [Event(f"ev-{n}", "ana") for n in range(1, 11)]
    deliveries = sum(deliver(CountingTracker(path), events, crash_before_ack={"ev-1"})
                     for _ in range(2))
    assert deliveries == 22 and CountingTracker(path).sessions("ana") == 22


def test_fixed_a_consumer_sigkilled_between_recording_the_id_and_counting_loses_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    path = str(tmp_path / "progress.db")
    child = ("import os, signal, sys\n"
             "from snippets.course.common_mistakes_no_idempotency import Event, IdempotentTracker\n"
             "def die(event):\n"
             "    if event.id == 'ev-2':\n"
             "        os.kill(os.getpid(), signal.SIGKILL)\n"
             "tracker = IdempotentTracker(die, path=sys.argv[1])\n"
             "for n in (1, 2, 3):\n"
             "    tracker.handle(Event(f'ev-{n}', 'ana'))\n")
    done = subprocess.run([sys.executable, "-c", child, path], timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL
    survivor = IdempotentTracker(path=path)  # the restarted consumer, same database
    assert survivor.sessions("ana") == 1  # ev-1 only: ev-2's id went with the dead transaction
    assert [r[0] for r in survivor.db.execute("SELECT event_id FROM processed")] == ["ev-1"]
    deliver(survivor, [Event("ev-2", "ana"), Event("ev-3", "ana"), Event("ev-1", "ana")], set())
    assert survivor.sessions("ana") == 3
