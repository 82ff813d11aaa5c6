"""The PostgreSQL store's own behaviour, against a real server: NOTIFY wake-ups, a late
commit that must not be skipped, schemas, and the page's demo.

The contract shared with SQLite is in test_event_store.py.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from snippets.event_sourcing.event_store_postgres import (
    NewEvent,
    PostgresEventStore,
    VersionConflictError,
    main,
)
from tests.engines import free_port
from tests.event_sourcing.pages import shown_output


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def waits_on_a_lock(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                       (pid,)).fetchone()
    return bool(row) and row[0] == "Lock"


def test_main_runs_the_scenario_and_can_run_again(postgres_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    for _ in range(2):  # the demo schema is reset on each run
        main()
        lines = capsys.readouterr().out.splitlines()
        assert lines == shown_output("event_store.md", "event_store_postgres.py")
        assert lines == [
            "second agent   : stream 'goal-ana-writing': expected version 1, but it is at "
            "version 2; nothing was appended",
            "  1  goal-ana-writing  v1  GoalSet        {'title': 'Write three evenings', "
            "'target': 3}",
            "  2  journal-ana       v1  EntryWritten   {'entry_id': 'e1'}",
            "  3  goal-ana-writing  v2  SessionLogged  {'entry_id': 'e1'}",
            "subscriber     : backlog #3 goal-ana-writing SessionLogged",
            "subscriber     : live    #4 journal-ana EntryWritten",
        ]


def test_main_without_a_server_says_how_to_point_it_at_one(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "No PostgreSQL at postgresql://postgres@127.0.0.1:" in captured.err
    assert "set DATABASE_URL" in captured.err


def test_the_store_reads_database_url_when_given_no_url(postgres_db, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    with PostgresEventStore() as store:
        assert store.url == postgres_db
        store.append("goal-1", [NewEvent("GoalSet", {"title": "Run"})], expected_version=0)
        assert store.read_all()[0].recorded_at.tzinfo is not None  # the server's clock


def test_a_notify_wakes_a_subscriber_that_would_otherwise_sleep_for_ten_minutes(postgres_db):
    with PostgresEventStore(postgres_db, poll_interval=600) as reader, \
            PostgresEventStore(postgres_db) as writer:
        got, caught_up = [], threading.Event()

        def follow() -> None:
            for event in reader.subscribe():
                got.append(event.data["n"])
                caught_up.set()
                if len(got) == 2:
                    return

        writer.append("goal-1", [NewEvent("SessionLogged", {"n": 1})], expected_version=0)
        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert caught_up.wait(10)
        writer.append("goal-1", [NewEvent("SessionLogged", {"n": 2})], expected_version=1)
        thread.join(10)
        assert not thread.is_alive() and got == [1, 2]


def test_stores_in_different_schemas_share_nothing(postgres_db):
    with PostgresEventStore(postgres_db, schema="coaching") as one, \
            PostgresEventStore(postgres_db, schema="billing") as other:
        one.append("goal-1", [NewEvent("GoalSet", {})], expected_version=0)
        other.append("goal-1", [NewEvent("GoalSet", {})], expected_version=0)
        assert one.last_position() == other.last_position() == 1
    with pytest.raises(ValueError, match="invalid schema name 'x; DROP TABLE events'"):
        PostgresEventStore(postgres_db, schema="x; DROP TABLE events")


def test_a_late_committing_append_is_never_skipped_by_a_reader(postgres_db):
    """Append A stalls after inserting its row (a trigger waits on a lock we hold);
    append B starts later. B must not become visible before A."""
    gate = 4242
    with PostgresEventStore(postgres_db) as a, PostgresEventStore(postgres_db) as b, \
            PostgresEventStore(postgres_db) as reader, \
            psycopg.connect(postgres_db, autocommit=True) as control:
        control.execute(f"""
            CREATE FUNCTION event_store.gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_lock_shared({gate});
                  PERFORM pg_advisory_unlock_shared({gate}); RETURN NEW; END $$;
            CREATE TRIGGER gate BEFORE INSERT ON event_store.events FOR EACH ROW
            WHEN (NEW.stream = 'goal-slow') EXECUTE FUNCTION event_store.gate();""")
        control.execute("SELECT pg_advisory_lock(%s)", (gate,))
        errors: list[BaseException] = []

        def append(store: PostgresEventStore, stream: str) -> None:
            try:
                store.append(stream, [NewEvent("SessionLogged", {"stream": stream})],
                             expected_version=0)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        slow = threading.Thread(target=append, args=(a, "goal-slow"))
        slow.start()
        wait_for(lambda: waits_on_a_lock(control, a._conn.info.backend_pid), 10, "A to stall")
        fast = threading.Thread(target=append, args=(b, "goal-fast"))
        fast.start()
        wait_for(lambda: waits_on_a_lock(control, b._conn.info.backend_pid), 10, "B to queue")
        assert reader.read_all() == [] and reader.last_position() == 0
        control.execute("SELECT pg_advisory_unlock(%s)", (gate,))
        slow.join(10)
        fast.join(10)
        assert not errors and not slow.is_alive() and not fast.is_alive()
        assert [(e.position, e.stream) for e in reader.read_all()] == [
            (1, "goal-slow"), (2, "goal-fast")]


def test_a_conflict_on_postgres_leaves_the_position_counter_where_it_was(postgres_db):
    with PostgresEventStore(postgres_db) as store:
        store.append("goal-1", [NewEvent("GoalSet", {})], expected_version=0)
        with pytest.raises(VersionConflictError):
            store.append("goal-1", [NewEvent("GoalSet", {})] * 5, expected_version=0)
        assert store.append("goal-2", [NewEvent("GoalSet", {})],
                            expected_version=0)[0].position == 2
