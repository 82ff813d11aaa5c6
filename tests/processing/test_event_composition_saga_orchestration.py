"""Tests of the orchestrated saga: outcomes, compensation retries, parking, and real crashes.

The crash tests kill a real orchestrator process with SIGKILL at a chosen
checkpoint, resume from its SQLite file in another process, and compare the
result with a run that never crashed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.processing.event_composition_saga_orchestration import (
    ORDERS,
    Crash,
    CrashAt,
    Orchestrator,
    Participants,
    Step,
    Unavailable,
    crash_sweep,
    fresh,
    main,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]


async def no_wait(seconds: float) -> None:
    pass


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def saga(order: dict, *, down: set[str] = frozenset(), conn=None, participants=None):
    if conn is None:
        conn, participants = fresh()
    participants.down = set(down)
    orchestrator = Orchestrator(conn, participants, sleep=no_wait)
    orchestrator.start("o-1", order)
    status = run(orchestrator.run("o-1"))
    log = [e for (e,) in conn.execute("SELECT entry FROM saga_log ORDER BY n")]
    return status, log, conn, participants, orchestrator


def test_a_successful_order_reserves_charges_and_confirms():
    status, log, conn, participants, _ = saga(ORDERS["o-1"])
    assert status == "completed"
    assert log == ["reserve stock done", "charge card done", "confirm order done", "completed"]
    assert participants.available("cohort seat") == 2
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 0)]
    assert conn.execute("SELECT status FROM orders").fetchall() == [("confirmed",)]


def test_a_declined_card_releases_the_reserved_stock_and_cancels():
    status, log, conn, participants, _ = saga(ORDERS["o-2"])
    assert status == "cancelled"
    assert log == ["reserve stock done", "charge card failed: card declined", "release done",
                   "cancelled"]
    assert participants.available("cohort seat") == 3
    assert conn.execute("SELECT * FROM charges").fetchall() == []
    assert conn.execute("SELECT status FROM orders").fetchall() == [("cancelled",)]


def test_too_little_stock_cancels_with_nothing_to_undo():
    status, log, conn, participants, _ = saga(ORDERS["o-3"])
    assert (status, log) == ("cancelled", ["reserve stock failed: 5 wanted, 3 left", "cancelled"])
    assert participants.available("cohort seat") == 3
    assert conn.execute("SELECT count(*) FROM reservations").fetchone() == (0,)


class Flaky(Participants):
    """Participants whose ``release`` fails a set number of times."""

    def __init__(self, conn: sqlite3.Connection, failures: int) -> None:
        super().__init__(conn)
        self.failures, self.calls = failures, 0

    def release(self, saga_id: str, data: dict) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise Unavailable("inventory: 503")
        super().release(saga_id, data)


def test_a_failing_compensation_is_retried_with_backoff_and_then_succeeds():
    conn, _ = fresh()
    participants, delays = Flaky(conn, failures=2), []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    orchestrator = Orchestrator(conn, participants, sleep=sleep, attempts=3)
    orchestrator.start("o-2", ORDERS["o-2"])
    assert run(orchestrator.run("o-2")) == "cancelled"
    assert delays == [0.5, 1.0] and participants.calls == 3
    assert participants.available("cohort seat") == 3


def test_a_compensation_that_keeps_failing_parks_the_saga_with_what_a_human_needs():
    status, log, conn, participants, orchestrator = saga(ORDERS["o-2"], down={"release"})
    assert status == "parked" and log[-1] == "parked: release failed"
    assert orchestrator.parked() == [{
        "saga": "o-1", "compensation": "release", "still to undo": ["reserve stock"],
        "order": ORDERS["o-2"], "error": "release: service unavailable"}]
    assert participants.available("cohort seat") == 2  # still reserved: nothing was lost
    participants.down.clear()
    assert run(orchestrator.retry_parked("o-1")) == "cancelled"
    assert participants.available("cohort seat") == 3 and orchestrator.parked() == []
    with pytest.raises(ValueError, match="'o-1' is cancelled, not parked"):
        run(orchestrator.retry_parked("o-1"))


def test_a_step_that_stays_unavailable_gives_up_the_order_and_compensates():
    status, log, _, participants, _ = saga(ORDERS["o-1"], down={"charge"})
    assert status == "cancelled"
    assert "charge card failed: charge: service unavailable" in log
    assert participants.available("cohort seat") == 3


def test_a_failure_after_the_charge_refunds_and_releases_newest_first():
    status, log, conn, participants, _ = saga(ORDERS["o-1"], down={"confirm"})
    assert status == "cancelled"
    assert log == ["reserve stock done", "charge card done",
                   "confirm order failed: confirm: service unavailable", "refund done",
                   "release done", "cancelled"]
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 1)]
    assert participants.available("cohort seat") == 3


def test_a_step_without_compensation_is_skipped_while_undoing():
    conn, participants = fresh()
    steps = (Step("reserve stock", "reserve", "release"), Step("confirm order", "confirm", None),
             Step("charge card", "charge", "refund"))
    orchestrator = Orchestrator(conn, participants, sleep=no_wait, steps=steps)
    orchestrator.start("o-2", ORDERS["o-2"])
    assert run(orchestrator.run("o-2")) == "cancelled"
    log = [e for (e,) in conn.execute("SELECT entry FROM saga_log ORDER BY n")]
    assert log[-3:] == ["confirm order: nothing to undo", "release done", "cancelled"]


def test_participants_are_idempotent_so_a_repeated_command_changes_nothing():
    conn, participants = fresh()
    for _ in range(3):
        participants.reserve("o-1", ORDERS["o-1"])
        participants.charge("o-1", ORDERS["o-1"])
    assert participants.available("cohort seat") == 2
    assert conn.execute("SELECT count(*), sum(amount) FROM charges").fetchone() == (1, 90)
    for _ in range(3):
        participants.release("o-1", ORDERS["o-1"])
    assert participants.available("cohort seat") == 3


@pytest.mark.parametrize(("order", "problem"), [
    ({"item": "cohort seat", "qty": "1", "amount": 90, "card": "ok"}, "'qty' must be int"),
    ({"item": "cohort seat", "qty": 1, "card": "ok"}, "'amount' must be int, not None"),
    ({"item": 7, "qty": 1, "amount": 90, "card": "ok"}, "'item' must be str"),
    ({"item": "cohort seat", "qty": 0, "amount": 90, "card": "ok"}, "qty must be >= 1"),
])
def test_a_malformed_order_is_refused_by_name_and_nothing_is_stored(order, problem):
    conn, participants = fresh()
    orchestrator = Orchestrator(conn, participants)
    with pytest.raises(ValueError, match=problem):
        orchestrator.start("o-9", order)
    assert conn.execute("SELECT count(*) FROM sagas").fetchone() == (0,)


def test_starting_a_saga_twice_is_harmless_and_an_unknown_saga_is_named():
    status, _, conn, participants, orchestrator = saga(ORDERS["o-1"])
    orchestrator.start("o-1", ORDERS["o-1"])
    assert run(orchestrator.run("o-1")) == status == "completed"
    with pytest.raises(KeyError, match="no saga 'o-404'"):
        run(orchestrator.run("o-404"))


@pytest.mark.parametrize("order_id", sorted(ORDERS))
def test_a_crash_at_every_checkpoint_resumes_to_the_state_of_a_run_without_crash(order_id):
    down = {"release"} if order_id == "o-2" else set()
    same, tried = run(crash_sweep(order_id, ORDERS[order_id], down))
    assert same == tried and tried >= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["ok", "declined"])),
                min_size=1, max_size=5),
       st.lists(st.integers(1, 25), max_size=3))
def test_several_sagas_sharing_stock_survive_any_crash_points(orders, crash_points):
    def play(crashes: list[int]):
        conn, participants = fresh()
        ids = [f"o-{n}" for n in range(len(orders))]
        for saga_id, (qty, card) in zip(ids, orders):
            Orchestrator(conn, participants).start(
                saga_id, {"item": "cohort seat", "qty": qty, "amount": 90 * qty, "card": card})
        for crash_at in crashes:  # each crash kills the process somewhere in the run
            orchestrator = Orchestrator(conn, participants, sleep=no_wait,
                                        checkpoint=CrashAt(crash_at))
            try:
                for saga_id in ids:
                    run(orchestrator.run(saga_id))
            except Crash:
                conn.rollback()
        for saga_id in ids:  # the last restart runs everything to the end
            run(Orchestrator(conn, participants, sleep=no_wait).run(saga_id))
        return snapshot(conn)

    assert play(crash_points) == play([])


CHILD = """
import asyncio, os, sys, time
from snippets.processing.event_composition_saga_orchestration import (
    ORDERS, Orchestrator, fresh)

db, order_id, stop_at = sys.argv[1], sys.argv[2], sys.argv[3]
conn, participants = fresh(db)
participants.down = set(sys.argv[4:])

def checkpoint(saga_id, name):
    if name == stop_at:
        print("AT", name, flush=True)
        time.sleep(60)  # the test kills us here

async def no_wait(seconds):
    pass

orchestrator = Orchestrator(conn, participants, checkpoint=checkpoint, sleep=no_wait)
orchestrator.start(order_id, ORDERS[order_id])
print("FINISHED", asyncio.run(orchestrator.run(order_id)), flush=True)
"""


@pytest.mark.parametrize(("order_id", "stop_at", "down"), [
    ("o-1", "after reserve stock, unrecorded", []),
    ("o-1", "before charge card", []),
    ("o-1", "after charge card, unrecorded", []),
    ("o-1", "after confirm order, unrecorded", []),
    ("o-2", "after release, unrecorded", []),
    ("o-2", "before release", ["release"]),
])
def test_killing_the_orchestrator_process_between_steps_and_resuming_gives_the_same_state(
        tmp_path, order_id, stop_at, down):
    db = tmp_path / "saga.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), order_id, stop_at, *down],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line == f"AT {stop_at}\n", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    conn, participants = fresh(str(db))  # a new process: only the file is left
    participants.down = set(down)
    assert conn.execute("SELECT status FROM sagas").fetchone()[0] in ("running", "compensating")
    status = run(Orchestrator(conn, participants, sleep=no_wait).run(order_id))

    reference, reference_participants = fresh()
    reference_participants.down = set(down)
    expected = Orchestrator(reference, reference_participants, sleep=no_wait)
    expected.start(order_id, ORDERS[order_id])
    assert status == run(expected.run(order_id))
    assert snapshot(conn) == snapshot(reference)


def test_the_demo_shows_four_outcomes_a_parked_saga_and_a_clean_crash_sweep(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:4]] == [
        "o-1 completed", "o-2 cancelled", "o-3 cancelled", "o-4 parked   "]
    assert out[4].startswith("for a human: o-4 needs 'release' to undo ['reserve stock']")
    assert out[5] == "o-4 after an operator's retry: cancelled"
    assert out[6] == "seats left: 2, charged: 90"
    assert out[7] == ("crash sweep: 16 crash points in 4 sagas, 16 resumed to the final state "
                      "of the run without a crash")
