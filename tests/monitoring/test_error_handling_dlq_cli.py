"""Tests of the dlq command line: list, filter, show, redrive and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snippets.monitoring import error_handling_dlq_cli as module
from snippets.monitoring.error_handling_dlq_cli import Store, main

T0 = 1_741_035_600.0  # 2025-03-03T21:00:00Z


def clock():
    return T0 + 7200


@pytest.fixture
def db(tmp_path) -> str:
    path = str(tmp_path / "dead_letters.sqlite3")
    store = Store(path)
    store.register_consumer("mood-agent", "1.4.0")
    store.register_consumer("goal-tracker", "2.0.1")
    for n in (1, 2):
        store.add(source="coaching.entries", consumer="mood-agent", consumer_version="1.4.0",
                  reason="max_attempts", error="TimeoutError: model endpoint did not answer",
                  attempts=3, headers={"message_id": f"m-{n}", "traceparent": f"00-{n}"},
                  body=json.dumps({"entry": n}).encode(), dead_at=T0 + 60 * n)
    store.add(source="coaching.goals", consumer="goal-tracker", consumer_version="2.0.0",
              reason="max_attempts", error="KeyError: 'goal'", attempts=3,
              headers={"message_id": "m-3"}, body=b"\x00\xff", dead_at=T0 + 300)
    store.db.close()
    return path


def dlq(db, *argv):
    return main(["--db", db, *argv], clock=clock)


def queue(db):
    return [(r["source"], json.loads(r["headers"])) for r in
            Store(db).db.execute("SELECT source, headers FROM queue ORDER BY id")]


def redriven(db):
    rows = Store(db).db.execute("SELECT id FROM dead_letters WHERE redriven_at IS NOT NULL")
    return [r["id"] for r in rows]


def test_list_counts_letters_by_consumer_version_reason_and_error(db, capsys):
    assert dlq(db, "list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "CONSUMER     VERSION  REASON       COUNT  OLDEST  ERROR",
        "mood-agent   1.4.0    max_attempts     2   1h59m  TimeoutError: model endpoint did not answer",
        "goal-tracker 2.0.0    max_attempts     1   1h55m  KeyError: 'goal'",
    ]


def test_filter_selects_by_consumer_source_and_error_text(db, capsys):
    assert dlq(db, "filter", "--error", "Timeout", "--source", "coaching.entries") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2"]
    assert lines[0] == ("#1   2025-03-03T21:01:00Z mood-agent@1.4.0 max_attempts attempts=3 m-1 "
                        "TimeoutError: model endpoint did not answer")
    assert dlq(db, "filter", "--consumer", "goal-tracker", "--limit", "5") == 0
    assert capsys.readouterr().out.startswith("#3 ")


def test_show_prints_the_original_headers_and_a_binary_body_as_base64(db, capsys):
    assert dlq(db, "show", "3") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["headers"] == {"message_id": "m-3"}
    assert doc["body"] == "base64:AP8="
    assert (doc["dead_at"], doc["redriven_at"]) == ("2025-03-03T21:05:00Z", None)


def test_redrive_refuses_the_consumer_version_that_failed_and_changes_nothing(db, capsys):
    assert dlq(db, "redrive", "--consumer", "mood-agent") == 3
    err = capsys.readouterr().err
    assert "refused #1: mood-agent still runs 1.4.0, the version that failed" in err
    assert "nothing redriven" in err
    assert queue(db) == [] and redriven(db) == []


def test_after_a_fix_is_deployed_redrive_puts_messages_back_with_their_headers(db, capsys):
    Store(db).register_consumer("mood-agent", "1.4.1")
    assert dlq(db, "redrive", "--consumer", "mood-agent") == 0
    assert capsys.readouterr().out == "redrove 2 letters: #1, #2\n"
    assert queue(db) == [
        ("coaching.entries", {"message_id": "m-1", "traceparent": "00-1", "x-redriven-from": "1"}),
        ("coaching.entries", {"message_id": "m-2", "traceparent": "00-2", "x-redriven-from": "2"}),
    ]
    assert redriven(db) == [1, 2]
    assert dlq(db, "list") == 0  # the redriven letters no longer count as waiting
    assert "mood-agent" not in capsys.readouterr().out
    assert dlq(db, "filter", "--status", "redriven") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_letter_is_never_redriven_twice_even_with_force(db, capsys):
    assert dlq(db, "redrive", "1", "--force") == 0
    assert dlq(db, "redrive", "1", "--force") == 3
    assert "refused #1: already redriven at 2025-03-03T23:00:00Z" in capsys.readouterr().err
    assert len(queue(db)) == 1


def test_force_redrives_into_the_same_version(db, capsys):
    assert dlq(db, "redrive", "--consumer", "mood-agent", "--force") == 0
    assert redriven(db) == [1, 2]


def test_a_mixed_selection_is_redriven_all_or_nothing(db, capsys):
    # goal-tracker moved from 2.0.0 to 2.0.1 (fixed); mood-agent did not.
    assert dlq(db, "redrive", "1", "3") == 3
    err = capsys.readouterr().err
    assert "#1" in err and "#3" not in err
    assert queue(db) == [] and redriven(db) == []
    assert dlq(db, "redrive", "3") == 0
    assert queue(db) == [("coaching.goals", {"message_id": "m-3", "x-redriven-from": "3"})]


def test_a_consumer_with_no_registered_version_is_refused(tmp_path, capsys):
    path = str(tmp_path / "x.sqlite3")
    Store(path).add(source="s", consumer="ghost", consumer_version="1", reason="r", error="e",
                    attempts=1, headers={}, body=b"", dead_at=T0)
    assert main(["--db", path, "redrive", "--all"], clock=clock) == 3
    assert "ghost has registered no version" in capsys.readouterr().err


def test_dry_run_reports_without_redriving(db, capsys):
    Store(db).register_consumer("mood-agent", "1.4.1")
    assert dlq(db, "redrive", "--consumer", "mood-agent", "--dry-run") == 0
    assert capsys.readouterr().out == "would redrive 2 letters: #1, #2\n"
    assert queue(db) == [] and redriven(db) == []


def test_redrive_without_ids_or_filters_is_refused(db, capsys):
    assert dlq(db, "redrive") == 1
    assert "name letter ids or a filter" in capsys.readouterr().err


def test_two_operators_redriving_at_once_put_each_message_back_once(db):
    Store(db).register_consumer("mood-agent", "1.4.1")
    first, second = Store(db), Store(db)
    args = module.parser().parse_args(["redrive", "1", "2"])
    seen_by_first = first.select(args)  # the first operator has read the letters...
    assert second.redrive(second.select(args), force=False, now=T0) == []  # ...the second wins
    assert first.redrive(seen_by_first, force=False, now=T0) == [
        "#1: redriven meanwhile by someone else"]
    assert len(queue(db)) == 2 and redriven(db) == [1, 2]


def test_nothing_matching_and_an_unknown_id_exit_1(db, capsys):
    assert dlq(db, "filter", "--reason", "poison") == 1
    assert "no dead letters match" in capsys.readouterr().err
    assert dlq(db, "show", "99") == 1
    assert "no dead letter #99" in capsys.readouterr().err


def test_a_missing_store_file_is_named_and_not_created(tmp_path, capsys):
    path = tmp_path / "nope.sqlite3"
    assert main(["--db", str(path), "list"]) == 1
    assert f"no dead-letter store at '{path}'" in capsys.readouterr().err
    assert not path.exists()


def test_a_malformed_id_is_a_usage_error(db, capsys):
    with pytest.raises(SystemExit) as exit_:
        dlq(db, "show", "abc")
    assert exit_.value.code == 2
    assert "invalid int value: 'abc'" in capsys.readouterr().err


def test_the_store_path_comes_from_DLQ_DB_when_not_given(db, monkeypatch, capsys):
    monkeypatch.setenv("DLQ_DB", db)
    assert main(["filter", "--consumer", "goal-tracker"], clock=clock) == 0
    assert capsys.readouterr().out.startswith("#3 ")


def test_it_runs_as_a_command_with_exit_codes(db):
    script = Path(module.__file__)
    done = subprocess.run([sys.executable, "-I", str(script), "--db", db, "redrive", "2"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "refused #2: mood-agent still runs 1.4.0" in done.stderr
    done = subprocess.run([sys.executable, "-I", str(script), "--db", db, "filter"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 3


def test_without_arguments_it_demonstrates_refusal_then_redrive(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.count("(exit 3)") == 2
    assert "redrove 3 letters: #1, #2, #3" in out
    assert out.splitlines()[-1] == ("back on the queue: [('coaching.entries', 'm-1'), "
                                    "('coaching.entries', 'm-2'), ('coaching.entries', 'm-3')]")


@pytest.mark.parametrize("operators", [2, 4])
def test_operators_redriving_the_same_letters_in_parallel_threads_put_each_back_once(
        tmp_path, operators):
    """Real contention: each operator is a thread with its own connection, all released
    by one barrier to redrive the same 50 letters. Exactly one succeeds; the others are
    told someone else redrove them; the queue holds each message once."""
    path = str(tmp_path / "contended.sqlite3")
    store = Store(path)
    store.register_consumer("mood-agent", "1.4.1")
    for n in range(50):
        store.add(source="coaching.entries", consumer="mood-agent", consumer_version="1.4.0",
                  reason="max_attempts", error="TimeoutError", attempts=3,
                  headers={"message_id": f"m-{n}"}, body=b"{}", dead_at=T0 + n)
    store.db.close()
    args = module.parser().parse_args(["redrive", "--consumer", "mood-agent"])
    barrier = threading.Barrier(operators)

    def operate(n: int) -> list[str]:
        mine = Store(path)  # a connection of this thread's own
        letters = mine.select(args)
        barrier.wait()  # all have read the letters; now all redrive at once
        try:
            return mine.redrive(letters, force=False, now=T0)
        finally:
            mine.db.close()

    with ThreadPoolExecutor(operators) as pool:
        outcomes = list(pool.map(operate, range(operators)))
    assert sorted(map(len, outcomes)) == [0] + [1] * (operators - 1)
    assert all("redriven meanwhile by someone else" in r[0] for r in outcomes if r)
    ids = [h["message_id"] for _, h in queue(path)]
    assert sorted(ids) == sorted(f"m-{n}" for n in range(50))
    assert len(redriven(path)) == 50
