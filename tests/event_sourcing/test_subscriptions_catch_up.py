"""The catch-up subscription delivers every position once, in order, across the switch from
backlog to live, whatever a concurrent writer does; the naive switch-overs do not."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_sourcing.subscriptions_catch_up import (
    CatchUpSubscription,
    Recorded,
    Store,
    main,
    naive_deliver_everything,
    naive_listen_after_backlog,
)

ROOT = Path(__file__).resolve().parents[2]
RAM = "/dev/shm" if Path("/dev/shm").is_dir() else None  # thousands of commits: no fsync wait


@pytest.fixture
def store():
    with tempfile.TemporaryDirectory(dir=RAM) as folder:
        yield Store(Path(folder) / "events.db")


def fill(store: Store, count: int) -> None:
    for n in range(count):
        store.append("EntryWritten", {"n": n})


def test_listening_only_after_the_backlog_loses_what_was_appended_in_between(store):
    fill(store, 3)
    seen: list[int] = []
    live = naive_listen_after_backlog(store, lambda e: seen.append(e.position),
                                      lambda: store.append("EntryWritten", {}))
    store.append("EntryWritten", {})
    assert seen == [1, 2, 3] and live.events.get_nowait().position == 5
    assert live.events.empty()  # position 4 is in the store and will never be delivered


def test_delivering_every_buffered_event_delivers_the_overlap_twice(store):
    fill(store, 3)
    seen: list[int] = []
    naive_deliver_everything(store, lambda e: seen.append(e.position),
                             lambda: store.append("EntryWritten", {}))
    assert seen == [1, 2, 3, 4, 4]


@pytest.mark.parametrize("buffer", [1, 4, 1000])
def test_with_a_concurrent_writer_every_position_is_delivered_once_in_order(store, buffer):
    fill(store, 50)
    started = threading.Event()

    def writer() -> None:
        started.wait(10)
        fill(store, 350)

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []

    def handler(event) -> None:
        seen.append(event.position)
        started.set()  # the writer starts while the backlog is being read

    subscription = CatchUpSubscription(store, handler, page=7, buffer=buffer, poll_interval=0.05)
    subscription.run(until=lambda position: position >= 400)
    thread.join(10)
    assert seen == list(range(1, 401))
    assert store._listeners == []


def test_a_burst_larger_than_the_live_buffer_falls_back_to_reading_the_store(store):
    fill(store, 3)
    seen: list[int] = []
    subscription = CatchUpSubscription(store, lambda e: seen.append(e.position), buffer=2)
    subscription.on_caught_up = lambda: fill(store, 5) if len(seen) == 3 else None
    subscription.run(until=lambda position: position >= 8)
    assert seen == list(range(1, 9)) and subscription.catch_ups == 2


APPENDER = textwrap.dedent("""
    import sys
    from snippets.event_sourcing.subscriptions_catch_up import Store
    store = Store(sys.argv[1])
    for n in range(int(sys.argv[2])):
        store.append("EntryWritten", {"from": "another process", "n": n})
""")


def test_events_appended_by_another_process_are_found_by_polling(tmp_path):
    store = Store(tmp_path / "events.db")
    fill(store, 2)
    seen: list[int] = []
    subscription = CatchUpSubscription(store, lambda e: seen.append(e.position),
                                       poll_interval=0.05)

    def other_process() -> None:
        if len(seen) == 2:
            subprocess.run([sys.executable, "-c", APPENDER, str(tmp_path / "events.db"), "3"],
                           cwd=ROOT, check=True, timeout=60)
    subscription.on_caught_up = other_process
    subscription.run(until=lambda position: position >= 5)
    assert seen == [1, 2, 3, 4, 5]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 20), st.dictionaries(st.integers(1, 40), st.integers(1, 4), max_size=6),
       st.integers(0, 6), st.integers(1, 5), st.integers(1, 5))
def test_appends_at_any_moment_never_cause_a_gap_or_a_duplicate(
        initial, appends_when_delivering, burst, page, buffer):
    with tempfile.TemporaryDirectory(dir=RAM) as folder:
        check_no_gap_no_duplicate(Store(Path(folder) / "events.db"), initial,
                                  appends_when_delivering, burst, page, buffer)


def check_no_gap_no_duplicate(store, initial, appends_when_delivering, burst, page, buffer):
    fill(store, initial)
    total = initial + burst + sum(n for p, n in appends_when_delivering.items()
                                  if p <= initial + burst)
    # work out the final total: appends triggered by delivered positions can trigger more
    while True:
        more = initial + burst + sum(n for p, n in appends_when_delivering.items() if p <= total)
        if more == total:
            break
        total = more
    seen: list[int] = []
    pending_burst = [burst]

    def handler(event) -> None:
        seen.append(event.position)
        fill(store, appends_when_delivering.get(event.position, 0))  # a reaction appends

    def on_caught_up() -> None:
        fill(store, pending_burst.pop() if pending_burst else 0)

    subscription = CatchUpSubscription(store, handler, page=page, buffer=buffer,
                                       poll_interval=0.01)
    subscription.on_caught_up = on_caught_up
    subscription.run(until=lambda position: position >= total)
    assert seen == list(range(1, total + 1))


def test_a_failing_handler_stops_at_the_last_event_it_finished_and_a_restart_repeats_only_that(
        store):
    fill(store, 10)
    seen: list[int] = []

    def handler(event) -> None:
        if event.position == 6 and 6 not in failed:
            failed.append(6)
            raise RuntimeError("coach service down")
        seen.append(event.position)

    failed: list[int] = []
    first = CatchUpSubscription(store, handler, page=4)
    with pytest.raises(RuntimeError, match="coach service down"):
        first.run(until=lambda position: position >= 10)
    assert first.position == 5 and store._listeners == []
    CatchUpSubscription(store, handler, position=first.position).run(
        until=lambda position: position >= 10)
    assert seen == list(range(1, 11))


@pytest.mark.parametrize("options", [{"position": -1}, {"position": True}, {"page": 0},
                                     {"buffer": 0}, {"poll_interval": 0}])
def test_settings_that_cannot_work_are_refused(store, options):
    with pytest.raises(ValueError, match="need position >= 0, page >= 1"):
        CatchUpSubscription(store, print, **options)


def test_main_shows_the_loss_the_duplicate_and_the_clean_switch_over(capsys):
    main()
    out = capsys.readouterr().out
    assert "ephemeral                : heard ['e1', 'e2']" in out
    assert "backlog, then listen     : ['e1', 'e2', 'e3', 'e4'] (e5 was appended" in out
    assert "listen, deliver all      : ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e6']" in out
    assert "catch-up from position 2 : ['e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9'], " \
           "read the store 2 times" in out


# The tests below set poll_interval to a minute, far above their run time: the subscription
# must reach its result without waiting for a poll, so it never does.
NO_POLL = 60.0


def test_events_keep_their_type_and_data_from_the_backlog_and_from_live(store):
    assert store.append("EntryWritten", {"entry": "e1"}) == (1, "EntryWritten", {"entry": "e1"})
    seen: list[Recorded] = []
    subscription = CatchUpSubscription(store, seen.append, poll_interval=NO_POLL)
    subscription.on_caught_up = lambda: store.append("GoalSet", {"km": 10}) if len(seen) == 1 \
        else None
    subscription.run(until=lambda position: position >= 2)
    assert seen == [(1, "EntryWritten", {"entry": "e1"}), (2, "GoalSet", {"km": 10})]
    assert subscription.catch_ups == 1  # e1 from the backlog, the goal from the live buffer


def test_live_events_are_taken_from_the_buffer_skipping_those_the_backlog_delivered(store):
    fill(store, 3)
    seen: list[int] = []

    def handler(event) -> None:
        seen.append(event.position)
        if event.position == 1:  # appended while the backlog is read: in the backlog and buffer
            store.append("EntryWritten", {})

    subscription = CatchUpSubscription(store, handler, poll_interval=NO_POLL)
    subscription.on_caught_up = lambda: fill(store, 3) if len(seen) == 4 else None
    subscription.run(until=lambda position: position >= 7)
    assert seen == list(range(1, 8)) and subscription.catch_ups == 1


def test_a_hole_in_the_live_buffer_is_filled_from_the_store_not_skipped(tmp_path):
    store = Store(tmp_path / "events.db")
    other_process = Store(tmp_path / "events.db")  # its appends reach no listener of `store`
    fill(store, 3)
    seen: list[int] = []

    def writers() -> None:
        if len(seen) == 3:
            other_process.append("EntryWritten", {"from": "another process"})  # position 4
            store.append("EntryWritten", {})  # position 5, pushed: the buffer skips 4

    subscription = CatchUpSubscription(store, lambda e: seen.append(e.position),
                                       poll_interval=NO_POLL)
    subscription.on_caught_up = writers
    subscription.run(until=lambda position: position >= 5)
    assert seen == [1, 2, 3, 4, 5] and subscription.catch_ups == 2


def test_a_listener_that_falls_behind_keeps_what_fit_and_is_marked_overflowed(store):
    live = store.listen(2)
    fill(store, 2)
    assert not live.overflowed
    fill(store, 1)
    assert live.overflowed
    assert [live.events.get_nowait().position for _ in range(2)] == [1, 2]
    assert live.events.empty()


@pytest.mark.parametrize(("burst", "reads"), [(100, 1), (101, 2)])
def test_by_default_the_live_buffer_holds_100_events(store, burst, reads):
    fill(store, 1)
    seen: list[int] = []
    subscription = CatchUpSubscription(store, lambda e: seen.append(e.position),
                                       poll_interval=NO_POLL)
    subscription.on_caught_up = lambda: fill(store, burst) if len(seen) == 1 else None
    subscription.run(until=lambda position: position >= 1 + burst)
    assert seen == list(range(1, burst + 2)) and subscription.catch_ups == reads


class RecordingStore(Store):
    """The store, recording each backlog read and how long each listener was waited on."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.path = path
        self.reads: list[tuple[int, int]] = []
        self.waits: list[float | None] = []

    def read_all(self, after: int, limit: int) -> list[Recorded]:
        self.reads.append((after, limit))
        return super().read_all(after, limit)

    def listen(self, size: int):
        waits = self.waits

        class Waits(queue.Queue):
            def get(self, block: bool = True, timeout: float | None = None) -> Recorded:
                waits.append(timeout)
                return super().get(block, timeout)

        live = super().listen(size)
        live.events = Waits(size)  # these tests append from one thread: none in between
        return live


@pytest.fixture
def recording_store():
    with tempfile.TemporaryDirectory(dir=RAM) as folder:
        yield RecordingStore(Path(folder) / "events.db")


def test_by_default_the_backlog_is_read_100_events_at_a_time(recording_store):
    store = recording_store
    fill(store, 250)
    seen: list[int] = []
    CatchUpSubscription(store, lambda e: seen.append(e.position)).run(
        until=lambda position: position >= 250)
    assert seen == list(range(1, 251))
    assert store.reads == [(0, 100), (100, 100), (200, 100)]


def test_by_default_it_reads_the_store_after_half_a_second_without_a_live_event(
        recording_store):
    store = recording_store
    other_process = Store(store.path)
    fill(store, 2)
    seen: list[int] = []
    subscription = CatchUpSubscription(store, lambda e: seen.append(e.position))
    subscription.on_caught_up = lambda: other_process.append("EntryWritten", {}) \
        if len(seen) == 2 else None
    subscription.run(until=lambda position: position >= 3)
    assert seen == [1, 2, 3] and subscription.catch_ups == 2
    assert store.waits == [0.5]  # then it read the store and found the other process's event
