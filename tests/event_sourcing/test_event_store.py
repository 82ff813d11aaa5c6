"""The contract both event stores meet, run against SQLite and a real PostgreSQL.

Every test here takes the ``backend`` fixture, so the same assertions run on
``SQLiteEventStore`` and ``PostgresEventStore``: ordering, optimistic
concurrency, bad input, corruption, subscriptions, concurrent threads and
processes, a writer killed mid-append, and a stateful model check.
"""

from __future__ import annotations

import multiprocessing
import queue
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from snippets.event_sourcing.event_store_postgres import PostgresEventStore
from snippets.event_sourcing.event_store_sqlite import SQLiteEventStore
from tests.event_sourcing.workers import Backend, append_with_retries, race_rounds

ROOT = Path(__file__).resolve().parents[2]


def new(backend: Backend, type_: str = "SessionLogged", **data):
    return backend.module.NewEvent(type_, data)


def summary(events) -> list[tuple[int, str, int, str, dict]]:
    return [(e.position, e.stream, e.version, e.type, e.data) for e in events]


# ------------------------------------------------------------------ order and versions
def test_both_stores_are_what_the_pages_say_they_are(backend, store):
    assert isinstance(store, SQLiteEventStore if backend.name == "sqlite" else PostgresEventStore)


def test_events_come_back_in_stream_order_and_in_one_global_order(backend, store):
    store.append("goal-1", [new(backend, "GoalSet", title="Run", target=2)], expected_version=0)
    store.append("journal-ana", [new(backend, "EntryWritten", entry_id="e1")], expected_version=0)
    recorded = store.append("goal-1", [new(backend, entry_id="e1"), new(backend, entry_id="e2")],
                            expected_version=1)
    assert [(e.position, e.version) for e in recorded] == [(3, 2), (4, 3)]
    assert summary(store.read_stream("goal-1")) == [
        (1, "goal-1", 1, "GoalSet", {"title": "Run", "target": 2}),
        (3, "goal-1", 2, "SessionLogged", {"entry_id": "e1"}),
        (4, "goal-1", 3, "SessionLogged", {"entry_id": "e2"}),
    ]
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert [e.position for e in store.read_all(after=1, limit=2)] == [2, 3]
    assert [e.version for e in store.read_stream("goal-1", from_version=3)] == [3]
    assert store.read_stream("goal-unknown") == [] and store.read_all(after=4) == []
    assert store.last_position() == 4
    assert all(e.recorded_at.tzinfo is not None for e in store.read_all())


def test_the_clock_stamps_each_event_and_the_stamp_survives_storage(backend):
    from datetime import UTC, datetime

    when = datetime(2025, 3, 3, 21, 30, tzinfo=UTC)
    with backend.open(clock=lambda: when) as store:
        recorded = store.append("goal-1", [new(backend)], expected_version=0)
        assert recorded[0].recorded_at == when == store.read_all()[0].recorded_at


def test_a_conflicting_append_names_the_stream_and_both_versions_and_stores_nothing(backend, store):
    store.append("goal-1", [new(backend, entry_id="e1")], expected_version=0)
    for expected in (0, 2, 7):
        with pytest.raises(backend.module.VersionConflictError) as caught:
            store.append("goal-1", [new(backend, entry_id="late"), new(backend, entry_id="x")],
                         expected_version=expected)
        assert str(caught.value) == (f"stream 'goal-1': expected version {expected}, but it is "
                                     "at version 1; nothing was appended")
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == (
            "goal-1", expected, 1)
    assert [e.data for e in store.read_all()] == [{"entry_id": "e1"}]
    assert store.append("journal-ana", [new(backend)], expected_version=0)[0].position == 2


@pytest.mark.parametrize(("args", "error", "message"), [
    (("", [("T", {})], 0), ValueError, "invalid stream name ''"),
    (("goal 1", [("T", {})], 0), ValueError, "invalid stream name 'goal 1'"),
    ((None, [("T", {})], 0), ValueError, "invalid stream name None"),
    (("goal-1", [], 1), ValueError, "stream 'goal-1': no events to append"),
    (("goal-1", [("T", {})], -1), ValueError, "expected_version must be an int >= 0, not -1"),
    (("goal-1", [("T", {})], True), ValueError, "expected_version must be an int >= 0, not True"),
    (("goal-1", [("T", {}), ("bad type!", {})], 1), ValueError,
     "event 1: invalid event type 'bad type!'"),
    (("goal-1", [("T", {}), "GoalSet"], 1), TypeError, "event 1: expected a NewEvent, not str"),
    (("goal-1", [("T", {"at": object()})], 1), TypeError,
     r"event 0 \(T\): data is not JSON: Object of type object"),
    (("goal-1", [("T", {"x": float("nan")})], 1), TypeError, "event 0 \\(T\\): data is not JSON"),
    (("goal-1", [("T", {"x": (1, 2)})], 1), TypeError, "survives a round trip"),
    (("goal-1", [("T", {1: "a"})], 1), TypeError, "survives a round trip"),
    (("goal-1", [("T", ["not", "a", "dict"])], 1), TypeError, "must be a JSON object"),
    (("goal-1", [("T", {"text": "nul \x00 inside"})], 1), TypeError, "no NUL"),
    (("goal-1", [("T", {"text": "\ud800"})], 1), TypeError, "surrogates not allowed"),
])
def test_bad_input_gets_a_clear_error_and_loses_nothing_already_stored(backend, store, args,
                                                                      error, message):
    store.append("goal-1", [new(backend, entry_id="kept")], expected_version=0)
    stream, items, expected = args
    events = [backend.module.NewEvent(*i) if isinstance(i, tuple) else i for i in items]
    with pytest.raises(error, match=message):
        store.append(stream, events, expected_version=expected)
    assert summary(store.read_all())[0][1:] == ("goal-1", 1, "SessionLogged", {"entry_id": "kept"})
    assert store.last_position() == 1
    store.append("goal-1", [new(backend, entry_id="after")], expected_version=1)  # still usable


def test_text_that_merely_looks_like_an_escape_is_stored_as_written(backend, store):
    data = {"text": "a backslash-u: \\u0000, emoji 🙂, accents é"}
    store.append("journal-ana", [backend.module.NewEvent("EntryWritten", data)], expected_version=0)
    assert store.read_all()[0].data == data


def corrupt(backend: Backend, position: int) -> None:
    if backend.name == "sqlite":
        with sqlite3.connect(backend.location) as conn:
            conn.execute("UPDATE events SET data = '{\"entry_id\": ' WHERE position = ?",
                         (position,))
    else:
        with psycopg.connect(backend.location, autocommit=True) as conn:
            conn.execute("UPDATE event_store.events SET data = '\"half an event\"'::jsonb "
                         "WHERE position = %s", (position,))


def test_a_corrupt_stored_event_is_reported_with_its_stream_version_and_position(backend, store):
    store.append("goal-1", [new(backend, entry_id="e1")], expected_version=0)
    store.append("goal-1", [new(backend, entry_id="e2")], expected_version=1)
    corrupt(backend, 2)
    where = r"stream 'goal-1' version 2 \(position 2\): stored event 'SessionLogged' is corrupt"
    with pytest.raises(backend.module.CorruptEventError, match=where):
        store.read_stream("goal-1")
    with pytest.raises(backend.module.CorruptEventError, match=where):
        store.read_all()
    assert [e.version for e in store.read_all(limit=1)] == [1]  # the rest is still readable


def fail_inserts_of_type(backend: Backend, type_: str) -> None:
    """A trigger that makes the database refuse one row, as a full disk would."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.location) as conn:
            conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.type = "
                         f"'{type_}' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END")
    else:
        with psycopg.connect(backend.location, autocommit=True) as conn:
            conn.execute(f"""
                CREATE FUNCTION event_store.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'refused by trigger'; END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON event_store.events FOR EACH ROW
                WHEN (NEW.type = '{type_}') EXECUTE FUNCTION event_store.refuse();""")


def test_a_batch_that_fails_half_way_inside_the_database_stores_none_of_it(backend, store):
    store.append("goal-1", [new(backend, n=0)], expected_version=0)
    fail_inserts_of_type(backend, "Poison")
    batch = [new(backend, n=1), new(backend, n=2), new(backend, "Poison"), new(backend, n=3)]
    with pytest.raises((sqlite3.DatabaseError, psycopg.DatabaseError), match="refused by trigger"):
        store.append("goal-1", batch, expected_version=1)
    assert [e.data for e in store.read_all()] == [{"n": 0}]
    recorded = store.append("goal-1", batch[:2], expected_version=1)  # positions were not burnt
    assert [(e.position, e.version) for e in recorded] == [(2, 2), (3, 3)]


def test_events_survive_closing_and_reopening_the_store(backend):
    with backend.open() as store:
        store.append("goal-1", [new(backend, entry_id="e1")], expected_version=0)
    with backend.open() as store:
        assert summary(store.read_all()) == [(1, "goal-1", 1, "SessionLogged", {"entry_id": "e1"})]
        store.append("goal-1", [new(backend, entry_id="e2")], expected_version=1)
        assert store.last_position() == 2


# ------------------------------------------------------------------ subscriptions
def test_a_subscriber_gets_the_backlog_then_what_another_writer_appends(backend):
    with backend.open(poll_interval=0.05) as reader, backend.open() as writer:
        writer.append("goal-1", [new(backend, n=1), new(backend, n=2)], expected_version=0)
        got: list[int] = []
        backlog_read = threading.Event()

        def follow() -> None:
            for event in reader.subscribe(after=1):
                got.append(event.data["n"])
                backlog_read.set()
                if len(got) == 3:
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert backlog_read.wait(20)
        writer.append("goal-1", [new(backend, n=3)], expected_version=2)  # now live
        writer.append("journal-ana", [new(backend, n=4)], expected_version=0)
        thread.join(20)
        assert not thread.is_alive() and got == [2, 3, 4]


def test_a_subscriber_with_nothing_to_read_stops_when_asked(backend):
    with backend.open(poll_interval=0.05) as store:
        stop = threading.Event()
        got = []
        thread = threading.Thread(target=lambda: got.extend(store.subscribe(stop=stop)),
                                  daemon=True)
        thread.start()
        stop.set()
        thread.join(20)
        assert not thread.is_alive() and got == []


def test_a_subscriber_reads_a_large_backlog_in_batches_without_losing_one(backend, store):
    for start in range(0, 1200, 400):
        store.append("goal-1", [new(backend, n=n) for n in range(start, start + 400)],
                     expected_version=start)
    stop = threading.Event()
    seen = []
    for event in store.subscribe(stop=stop, batch_size=500):
        seen.append(event.data["n"])
        if len(seen) == 1200:
            break
    assert seen == list(range(1200))


def test_an_append_between_reading_the_backlog_and_waiting_wakes_the_subscriber(backend):
    """The append lands in the exact gap between the subscriber's last read and its wait.

    SQLite: through the same store object (appends elsewhere are found by polling).
    PostgreSQL: through another connection, whose NOTIFY must not be missed.
    """
    with backend.open(poll_interval=600) as reader, backend.open() as other:
        writer = reader if backend.name == "sqlite" else other
        writer.append("goal-1", [new(backend, n=1)], expected_version=0)
        real_read_all, reads = reader.read_all, []

        def read_then_append(**kwargs):
            batch = real_read_all(**kwargs)
            reads.append([e.position for e in batch])
            if len(reads) == 1:  # the backlog is read: the subscriber is about to wait
                writer.append("goal-1", [new(backend, n=2)], expected_version=1)
            return batch

        reader.read_all = read_then_append
        got, stop = [], threading.Event()

        def follow() -> None:
            for event in reader.subscribe(stop=stop):
                got.append(event.data["n"])
                if len(got) == 2:
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        thread.join(60)  # a missed wake-up would sleep for the 600 s poll interval
        stop.set()
        assert not thread.is_alive() and got == [1, 2]
        assert reads[:2] == [[1], [2]]


# ------------------------------------------------------------------ concurrency
WORKERS = 4


def run_threads(target, backend: Backend, *args) -> queue.Queue:
    barrier, results = threading.Barrier(WORKERS), queue.Queue()
    threads = [threading.Thread(target=target, args=(backend, barrier, results, w, *args))
               for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)
    return results


def run_processes(target, backend: Backend, *args) -> queue.Queue:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    processes = [ctx.Process(target=target, args=(backend, barrier, results, w, *args), daemon=True)
                 for w in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    return results


def drain(results, count: int) -> list:
    return [results.get(timeout=30) for _ in range(count)]


@pytest.mark.parametrize("run", [run_threads, run_processes], ids=["threads", "processes"])
def test_writers_racing_for_each_version_let_exactly_one_win(backend, run):
    rounds = 15
    outcomes = drain(run(race_rounds, backend, rounds), WORKERS * rounds)
    for round_ in range(rounds):
        this = [o for o in outcomes if o[0] == round_]
        assert len([o for o in this if o[2] == "won"]) == 1, this
        assert all(o[3] == round_ + 1 for o in this)  # losers were told the new version
    with backend.open() as store:
        events = store.read_stream("goal-race")
    winners = {(o[0], o[1]) for o in outcomes if o[2] == "won"}
    assert [e.version for e in events] == list(range(1, rounds + 1))
    assert {(e.data["round"], e.data["worker"]) for e in events} == winners


@pytest.mark.parametrize("run", [run_threads, run_processes], ids=["threads", "processes"])
def test_writers_retrying_on_conflict_lose_and_duplicate_nothing(backend, run):
    count = 20
    finished = drain(run(append_with_retries, backend, count), WORKERS)
    assert sorted(worker for worker, _conflicts in finished) == list(range(WORKERS))
    with backend.open() as store:
        events = store.read_stream("goal-shared")
    assert [e.version for e in events] == list(range(1, WORKERS * count + 1))
    written = [(e.data["worker"], e.data["i"]) for e in events]
    assert sorted(written) == [(w, i) for w in range(WORKERS) for i in range(count)]
    for worker in range(WORKERS):  # each writer's own events keep their order
        assert [i for w, i in written if w == worker] == list(range(count))


def test_a_live_subscriber_sees_concurrent_appends_as_one_gapless_order(backend):
    per_writer, total = 40, WORKERS * 40
    with backend.open(poll_interval=0.02) as reader:
        seen: list[int] = []

        def follow() -> None:
            for event in reader.subscribe(batch_size=7):
                seen.append(event.position)
                if len(seen) == total:
                    return

        def write(worker: int) -> None:
            with backend.open() as store:
                for i in range(per_writer):
                    store.append(f"goal-{worker}", [new(backend, i=i)], expected_version=i)

        threads = [threading.Thread(target=follow, daemon=True)] + [
            threading.Thread(target=write, args=(w,), daemon=True) for w in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads)
        assert seen == list(range(1, total + 1))


# ------------------------------------------------------------------ crash mid-append
def read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no line within {timeout} s"
    return stream.readline()


def writer_is_mid_transaction(backend: Backend, pid: int) -> bool:
    if backend.name == "sqlite":
        probe = sqlite3.connect(backend.location, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as error:  # the writer holds the write lock
            assert "locked" in str(error)
            return True
        finally:
            probe.close()
    with psycopg.connect(backend.location, autocommit=True) as conn:
        row = conn.execute("SELECT backend_xid IS NOT NULL FROM pg_stat_activity "
                           "WHERE pid = %s", (pid,)).fetchone()
        return bool(row and row[0])


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_writer_killed_mid_append_leaves_every_batch_whole_or_absent(backend):
    stream, batch = "goal-crash", 300
    with backend.open() as store:
        store.append(stream, [new(backend, "Tick", batch=0, i=i, pad="") for i in range(batch)],
                     expected_version=0)
    for _ in range(3):  # three crashes in a row
        with backend.open() as store:
            before = len(store.read_stream(stream))
        victim = subprocess.Popen(
            [sys.executable, "-m", "tests.event_sourcing.workers", backend.name,
             backend.location, stream, str(batch)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            pid = int(read_line(victim.stdout, 60).split()[1])
            with backend.open() as store:  # let it commit once, then catch it mid-batch
                wait_for(lambda before=before: len(store.read_stream(
                    stream, from_version=before + 1)) > 0, 60, "a first commit")
            wait_for(lambda pid=pid: writer_is_mid_transaction(backend, pid), 60,
                     "a transaction")
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(10) == -signal.SIGKILL
        finally:
            victim.kill()
            victim.wait(10)
            victim.stdout.close()
        if backend.name == "postgres":  # the server rolls back when it sees the socket close
            def gone(pid: int = pid) -> bool:
                with psycopg.connect(backend.location, autocommit=True) as conn:
                    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                        (pid,)).fetchone()[0] == 0
            wait_for(gone, 30, "the killed writer's backend to end")
        else:
            with sqlite3.connect(backend.location) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with backend.open() as store:
            events = store.read_stream(stream)
            assert len(events) > before and len(events) % batch == 0
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            for number in range(len(events) // batch):
                chunk = events[number * batch:(number + 1) * batch]
                assert [(e.data["batch"], e.data["i"]) for e in chunk] == [
                    (number, i) for i in range(batch)]
    with backend.open() as store:  # still usable after three crashes
        store.append(stream, [new(backend, "Tick", batch=-1, i=0, pad="")],
                     expected_version=len(events))


# ------------------------------------------------------------------ a model check
STREAMS = ["goal-1", "goal-2", "journal-ana"]
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=8)
VALUES = st.one_of(st.integers(-2**53, 2**53), SAFE_TEXT, st.booleans(), st.none(),
                   st.lists(st.integers(-100, 100), max_size=3))
EVENTS = st.lists(st.tuples(st.sampled_from(["GoalSet", "SessionLogged", "EntryWritten"]),
                            st.dictionaries(SAFE_TEXT, VALUES, max_size=3)),
                  min_size=1, max_size=4)


class StoreMachine(RuleBasedStateMachine):
    """The store against a plain model: a dict of lists plus one list for the global order."""

    backend: Backend

    def __init__(self) -> None:
        super().__init__()
        self.store = self.backend.open()
        if self.backend.name == "postgres":
            self.store._conn.execute("TRUNCATE events; UPDATE head SET position = 0")
        else:
            self.store._conn.execute("DELETE FROM events")
        self.streams: dict[str, list[tuple[str, dict]]] = {s: [] for s in STREAMS}
        self.order: list[tuple[str, int]] = []

    @rule(stream=st.sampled_from(STREAMS), events=EVENTS,
          drift=st.sampled_from([0, 0, 0, -1, 1, 3]))
    def append(self, stream, events, drift):
        current = len(self.streams[stream])
        expected = max(0, current + drift)
        batch = [self.backend.module.NewEvent(t, d) for t, d in events]
        if expected != current:
            with pytest.raises(self.backend.module.VersionConflictError) as caught:
                self.store.append(stream, batch, expected_version=expected)
            assert caught.value.actual == current
            return
        recorded = self.store.append(stream, batch, expected_version=expected)
        assert [e.position for e in recorded] == list(
            range(len(self.order) + 1, len(self.order) + len(batch) + 1))
        assert [e.version for e in recorded] == list(range(current + 1, current + len(batch) + 1))
        self.streams[stream] += events
        self.order += [(stream, e.version) for e in recorded]

    @rule(stream=st.sampled_from(STREAMS), junk=st.sampled_from([[], [("T", {"x": (1,)})]]))
    def append_bad_input(self, stream, junk):
        batch = [self.backend.module.NewEvent(t, d) for t, d in junk]
        with pytest.raises((ValueError, TypeError)):
            self.store.append(stream, batch, expected_version=len(self.streams[stream]))

    @rule(stream=st.sampled_from(STREAMS), from_version=st.integers(1, 6))
    def read_stream(self, stream, from_version):
        got = [(e.type, e.data) for e in self.store.read_stream(stream, from_version=from_version)]
        assert got == self.streams[stream][from_version - 1:]

    @rule(after=st.integers(0, 30), limit=st.integers(1, 8))
    def read_all(self, after, limit):
        got = [(e.position, e.stream, e.version)
               for e in self.store.read_all(after=after, limit=limit)]
        want = [(p, *self.order[p - 1]) for p in range(after + 1, len(self.order) + 1)][:limit]
        assert got == want

    @invariant()
    def last_position_is_the_number_of_events(self):
        assert self.store.last_position() == len(self.order)

    def teardown(self) -> None:
        self.store.close()


def test_the_store_behaves_like_a_plain_in_memory_model(backend):
    machine = type("Machine", (StoreMachine,), {"backend": backend})
    examples = 30 if backend.name == "sqlite" else 20
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=15, deadline=None))
