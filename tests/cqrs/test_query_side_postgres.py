"""The PostgreSQL read models, against a real server: the same answers as a plain fold and
as SQLite, two projectors at once, a projector killed mid-batch, consistent snapshots."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from snippets.cqrs import query_side_read_models as lite
from snippets.cqrs.query_side_postgres import (
    Event,
    EventList,
    PostgresProjector,
    PostgresQueries,
    ProjectionError,
    connect,
    main,
)
from tests.cqrs.coaching import answers, expected, histories, sample_history
from tests.engines import free_port

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "docs" / "data" / "outputs" / "cqrs" / "query_side_postgres.txt"


def source_of(history) -> EventList:
    source = EventList()
    source.events = [Event(i, s, t, d) for i, (s, t, d) in enumerate(history, 1)]
    return source


def test_main_prints_what_the_page_shows_and_can_run_again(postgres_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", postgres_db)
    for _ in range(2):  # the demo schema is dropped and rebuilt on each run
        main()
        out = capsys.readouterr().out
        if os.environ.get("EDD_RECORD"):
            RECORDED.parent.mkdir(parents=True, exist_ok=True)
            RECORDED.write_text(out, encoding="utf-8")
        assert out == RECORDED.read_text(encoding="utf-8")
    lines = out.splitlines()
    assert lines[0] == "applied        : 33 events"
    assert lines[-2] == ("one more event : applied 3 (once per read model); follow-ups now "
                         "[]")  # the goal coach's note answered Ana's low-mood entry
    assert lines[-1] == ("checkpoints    : [('coaching_dashboard', 12), ('evening_reflection', "
                         "12), ('follow_ups', 12)]")


def test_main_without_a_server_says_how_to_point_it_at_one(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert "No PostgreSQL at postgresql://postgres@127.0.0.1:" in capsys.readouterr().err


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories)
def test_postgres_answers_like_a_plain_fold_and_like_sqlite(postgres_server, history):
    url = postgres_server.url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS parity CASCADE")
    projector = PostgresProjector(url, schema="parity", batch_size=7)
    queries = PostgresQueries(url, schema="parity")
    projector.catch_up(source_of(history))
    db = sqlite3.connect(":memory:")
    lite.Projector(db, [lite.CoachingDashboard(), lite.EveningReflection(), lite.FollowUps()]
                   ).catch_up(lite.EventList() if not history else _lite_source(history))
    assert answers(queries) == expected(history) == answers(lite.CoachingQueries(db))
    projector.close()
    queries.close()


def _lite_source(history) -> lite.EventList:
    source = lite.EventList()
    source.events = [lite.Event(i, s, t, d) for i, (s, t, d) in enumerate(history, 1)]
    return source


def test_two_projectors_running_at_once_apply_every_event_once(postgres_db):
    history = sample_history(300)
    source = source_of(history)
    projectors = [PostgresProjector(postgres_db, batch_size=5) for _ in range(3)]
    barrier = threading.Barrier(3)
    errors = []

    def run(projector: PostgresProjector) -> None:
        try:
            barrier.wait(10)
            projector.catch_up(source)
        except Exception as error:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(p,)) for p in projectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert answers(PostgresQueries(postgres_db)) == expected(history)
    positions = projectors[0].conn.execute("SELECT position FROM checkpoints").fetchall()
    assert positions == [(len(history),)] * 3
    for projector in projectors:
        projector.close()


def test_a_projector_killed_mid_batch_resumes_without_loss_or_double_counting(postgres_db):
    history = sample_history(200)
    rows = [[i, s, t, d] for i, (s, t, d) in enumerate(history, 1)]
    stall = next(r for r in rows[60:] if r[2] == "EntryWritten")  # in the dashboard's batches
    victim = subprocess.Popen(
        [sys.executable, "-m", "tests.cqrs.workers", "postgres", postgres_db, "read_models",
         stall[3]["entry_id"], json.dumps(rows)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([victim.stdout], [], [], 60)
        assert ready and victim.stdout.readline() == "mid-batch\n"
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            open_transactions = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'").fetchone()[0]
        assert open_transactions == 1  # the batch is applied in part, not committed
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait(10)
        victim.stdout.close()
    projector = PostgresProjector(postgres_db, batch_size=20)
    (position,) = projector.conn.execute(
        "SELECT position FROM checkpoints WHERE name = 'coaching_dashboard'").fetchone()
    assert position < stall[0] and position % 20 == 0  # the last whole batch, nothing after
    projector.catch_up(source_of(history))  # waits for the server to drop the dead session
    assert answers(PostgresQueries(postgres_db)) == expected(history)
    projector.close()


def test_a_query_reads_its_rows_and_position_from_one_snapshot(postgres_db):
    history = sample_history(60)
    projector = PostgresProjector(postgres_db, batch_size=1000)
    projector.catch_up(source_of(history[:30]))
    queries = PostgresQueries(postgres_db)
    user = history[-1][2]["user"]
    before = queries.dashboard(user)
    with queries._snapshot("coaching_dashboard") as as_of:
        projector.catch_up(source_of(history))  # commits while the query is in its snapshot
        (entries,) = queries.conn.execute("SELECT coalesce(sum(entries), 0) FROM dashboard"
                                          ).fetchone()
    assert as_of == 30
    assert entries == sum(1 for _, t, _ in history[:30] if t == "EntryWritten")
    after = queries.dashboard(user)
    assert (before.as_of, after.as_of) == (30, len(history))
    projector.close()
    queries.close()


def test_a_malformed_event_rolls_back_its_batch_and_names_it(postgres_db):
    source = EventList()
    source.add("journal-ana", "EntryWritten", user="ana", entry_id="e1", day="2025-03-01",
               words=10, mood=3)
    source.add("journal-ana", "EntryWritten", user="ana", entry_id="e2", day="2025-03-01",
               words="many", mood=3)
    projector = PostgresProjector(postgres_db, batch_size=10)
    with pytest.raises(ProjectionError, match=r"^coaching_dashboard failed at position 2 "
                                              r"\(journal-ana EntryWritten\): .*many.*; its "
                                              "batch was rolled back at 0$"):
        projector.catch_up(source)
    assert projector.conn.execute("SELECT count(*) FROM dashboard").fetchone() == (0,)
    assert PostgresQueries(postgres_db).dashboard("ana") is None
    source.events.pop()
    source.add("journal-ana", "EntryWritten", user="ana", entry_id="e2", day="2025-03-01",
               mood=3)  # no words at all
    with pytest.raises(ProjectionError, match="ProgrammingError query parameter missing: words"):
        projector.catch_up(source)
    projector.close()


def test_a_bad_schema_name_is_refused_before_anything_is_created(postgres_db):
    with pytest.raises(ValueError, match=r"invalid schema name 'x; DROP TABLE y'"):
        connect(postgres_db, "x; DROP TABLE y")


class Doubling(EventList):
    """Sends every event of a page twice in a row: a transport that duplicates."""

    def read_all(self, *, after: int = 0, limit: int = 1000):
        return [e for event in super().read_all(after=after, limit=limit) for e in (event, event)]


class Swapping(EventList):
    """Swaps the first two events after ``after``: a transport that reorders."""

    def read_all(self, *, after: int = 0, limit: int = 1000):
        page = super().read_all(after=after, limit=limit)
        return page[1::-1] + page[2:]


def test_an_event_sent_twice_within_one_page_counts_once_on_postgres(postgres_db):
    history = sample_history(120)
    source = Doubling()
    source.events = source_of(history).events
    projector = PostgresProjector(postgres_db, batch_size=7)
    assert projector.catch_up(source) == 3 * len(history)
    assert answers(PostgresQueries(postgres_db)) == expected(history)
    projector.close()


def test_an_event_sent_after_a_later_one_is_refused_on_postgres_and_nothing_is_lost(postgres_db):
    history = sample_history(60)
    source = Swapping()
    source.events = source_of(history).events
    projector = PostgresProjector(postgres_db, batch_size=10)
    with pytest.raises(ProjectionError, match=r"^coaching_dashboard: position 1 arrived after "
                                              r"position 2: the source is out of order; its "
                                              r"batch was rolled back at 0$"):
        projector.catch_up(source)
    assert projector.conn.execute("SELECT * FROM checkpoints ORDER BY name").fetchall() == [
        ("coaching_dashboard", 0), ("evening_reflection", 0), ("follow_ups", 0)]
    assert projector.catch_up(source_of(history)) == 3 * len(history)
    assert answers(PostgresQueries(postgres_db)) == expected(history)
    projector.close()
