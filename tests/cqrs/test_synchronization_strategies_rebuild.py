"""Rebuilding a read model beside the live one: readers never wait, never see a half-built
version, and never go back in time, while writers keep writing."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from snippets.cqrs.synchronization_strategies_rebuild import (
    EventLog,
    ReadSide,
    RebuildBehindError,
    StaleReadError,
    SummaryV1,
    SummaryV2,
    main,
)


def folded(log: EventLog, user: str) -> dict[str, object]:
    events = [d for _, d in log.read_all(0, 10**9) if d["user"] == user]
    moods = sum(d["mood"] for d in events)
    return {"entries": len(events), "words": sum(d["words"] for d in events),
            "mood": round(moods / len(events), 2)}


def test_a_rebuild_while_serving_never_takes_a_reader_back_in_time(tmp_path):
    log = EventLog(tmp_path / "events.db")
    side = ReadSide(log, tmp_path, SummaryV1(), batch_size=5)
    stop, latest = threading.Event(), [0]
    seen: list[list[tuple[int, int, int]]] = [[] for _ in range(3)]
    errors: list[BaseException] = []

    def guarded(body):
        def run(*args):
            try:
                body(*args)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)
                stop.set()
        return run

    @guarded
    def projector() -> None:
        while not stop.is_set():
            if not side.catch_up():
                stop.wait(0.002)  # idle: look again soon

    @guarded
    def writer() -> None:
        for i in range(400):
            latest[0] = log.append(user="ana", entry_id=f"e{i}", words=i % 50, mood=1 + i % 5)

    @guarded
    def reader(n: int) -> None:
        while not stop.is_set():  # reader 0 reads its writer's writes, the others plain
            answer = side.query("ana", at_least=latest[0] if n == 0 else 0, timeout=10)
            assert answer.get("entries", 0) == answer["as_of"]  # all events are Ana's: no half batch
            assert ("mood" in answer) == (answer["version"] == 2)
            seen[n].append((answer["version"], answer["as_of"]))

    threads = [threading.Thread(target=projector), threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    while latest[0] < 250 and not errors:
        stop.wait(0.001)
    side.deploy(2, SummaryV2())
    while not errors:
        try:
            side.promote(2)
            break
        except RebuildBehindError:
            stop.wait(0.002)  # still catching up: the live version serves meanwhile
    threads[1].join(60)
    if not errors:
        side.query("ana", at_least=400, timeout=10)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for answers in seen:  # neither the position nor the version ever goes back
        positions, versions = [p for _, p in answers], [v for v, _ in answers]
        assert positions == sorted(positions) and versions == sorted(versions)
        assert {version for version, _ in answers} <= {1, 2}
    assert any(version == 2 for answers in seen for version, _ in answers)
    final = side.query("ana", at_least=400)
    assert {k: final[k] for k in ("entries", "words", "mood")} == folded(log, "ana")
    assert sorted(p.name for p in tmp_path.glob("summary_*.db")) == ["summary_v2.db"]


def test_promoting_a_version_that_is_behind_is_refused_and_changes_nothing(tmp_path):
    log = EventLog(tmp_path / "events.db")
    for i in range(10):
        log.append(user="ana", entry_id=f"e{i}", words=10, mood=3)
    side = ReadSide(log, tmp_path, SummaryV1(), batch_size=4)
    while side.catch_up():
        pass
    side.deploy(2, SummaryV2())
    side.catch_up()  # v2 at 4, v1 still at 10
    with pytest.raises(RebuildBehindError, match="version 2 is at position 4, behind live "
                                                 "version 1 at 10; promoting it would take "
                                                 "readers back in time"):
        side.promote(2)
    assert side.status() == [(1, 10, "live"), (2, 4, "building")]
    assert side.query("ana")["version"] == 1
    with pytest.raises(ValueError, match="version 2 is already deployed"):
        side.deploy(2, SummaryV2())


def test_a_query_for_a_position_not_yet_reached_fails_with_both_positions(tmp_path):
    log = EventLog(tmp_path / "events.db")
    side = ReadSide(log, tmp_path, SummaryV1())
    token = log.append(user="ana", entry_id="e1", words=10, mood=3)
    with pytest.raises(StaleReadError, match="live version 1 is at position 0, your write is at 1"):
        side.query("ana", at_least=token, timeout=0.05)
    side.catch_up()
    assert side.query("ana", at_least=token, timeout=0)["entries"] == 1
    assert side.query("zoe") == {"user": "zoe", "version": 1, "as_of": 1}


def test_a_failing_batch_leaves_the_version_where_it_was(tmp_path):
    log = EventLog(tmp_path / "events.db")
    log.append(user="ana", entry_id="e1", words=10, mood=3)
    log.db.execute("INSERT INTO events (data) VALUES (?)", (json.dumps({"user": "ana"}),))
    side = ReadSide(log, tmp_path, SummaryV1())
    with pytest.raises(sqlite3.ProgrammingError):
        side.catch_up()
    assert side.status() == [(1, 0, "live")]


def test_a_batch_that_sqlite_rolls_back_on_its_own_is_reported_as_itself(tmp_path):
    log = EventLog(tmp_path / "events.db")
    log.append(user="ana", entry_id="e1", words=10, mood=3)
    side = ReadSide(log, tmp_path, SummaryV1())
    side.live.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON summary "
                         "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
        side.catch_up()
    assert side.status() == [(1, 0, "live")]


def test_a_retired_version_that_the_projector_still_holds_applies_nothing(tmp_path):
    log = EventLog(tmp_path / "events.db")
    side = ReadSide(log, tmp_path, SummaryV1())
    side.deploy(2, SummaryV2())
    old = side.live
    side.promote(2)
    log.append(user="ana", entry_id="e1", words=10, mood=3)
    assert old.catch_up_once(log, 10) == 0  # closed and deleted: skipped, not an error
    assert not old.path.exists()


def test_main_rebuilds_and_promotes_version_two(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "rebuilding     : [(1, 5, 'live'), (2, 4, 'building')], newest event 5"
    assert lines[3] == ("promote early  : version 2 is at position 4, behind live version 1 at 5; "
                        "promoting it would take readers back in time")
    assert lines[4] == ("promoted       : {'user': 'ana', 'entries': 5, 'words': 850, 'mood': "
                        "3.6, 'version': 2, 'as_of': 5}")
    assert lines[5] == "files left     : ['events.db', 'summary_v2.db']"
