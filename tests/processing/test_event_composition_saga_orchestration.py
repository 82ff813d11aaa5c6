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
    assert log == ["reserve stock done", "charge card refused: card declined", "release done",
                   "cancelled"]
    assert participants.available("cohort seat") == 3
    assert conn.execute("SELECT * FROM charges").fetchall() == []
    assert conn.execute("SELECT status FROM orders").fetchall() == [("cancelled",)]


def test_too_little_stock_cancels_with_nothing_to_undo():
    status, log, conn, participants, _ = saga(ORDERS["o-3"])
    assert (status, log) == ("cancelled", ["reserve stock refused: 5 wanted, 3 left", "cancelled"])
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
    status, log, _, participants, orchestrator = saga(ORDERS["o-2"], down={"release"})
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


def test_a_step_that_stays_unavailable_gives_up_the_order_and_compensates_it_too():
    status, log, conn, participants, _ = saga(ORDERS["o-1"], down={"charge"})
    assert status == "cancelled"
    assert log == ["reserve stock done", "charge card outcome unknown: charge: service unavailable",
                   "refund done", "release done", "cancelled"]
    assert participants.available("cohort seat") == 3
    assert conn.execute("SELECT count(*) FROM charges").fetchone() == (0,)


def test_a_failure_after_the_charge_refunds_and_releases_newest_first():
    status, log, conn, participants, _ = saga(ORDERS["o-1"], down={"confirm"})
    assert status == "cancelled"
    assert log == ["reserve stock done", "charge card done",
                   "confirm order outcome unknown: confirm: service unavailable",
                   "confirm order: nothing to undo", "refund done", "release done", "cancelled"]
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
    ({"item": "cohort seat", "qty": "1", "amount": 90, "card": "ok"}, "'qty' must be int, not '1'"),
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
    status, _, _, _, orchestrator = saga(ORDERS["o-1"])
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
participants.down = set(filter(None, sys.argv[4].split(",")))
participants.no_reply = set(filter(None, sys.argv[5].split(",")))

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


@pytest.mark.parametrize(("order_id", "stop_at", "down", "no_reply"), [
    ("o-1", "after reserve stock, unrecorded", [], []),
    ("o-1", "before charge card", [], []),
    ("o-1", "after charge card, unrecorded", [], []),
    ("o-1", "after confirm order, unrecorded", [], []),
    ("o-2", "after release, unrecorded", [], []),
    ("o-2", "before release", ["release"], []),
    ("o-5", "after charge card, outcome unknown, unrecorded", [], ["charge"]),
    ("o-5", "after refund, unrecorded", [], ["charge"]),
])
def test_killing_the_orchestrator_process_between_steps_and_resuming_gives_the_same_state(
        tmp_path, order_id, stop_at, down, no_reply):
    db = tmp_path / "saga.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), order_id, stop_at,
                              ",".join(down), ",".join(no_reply)],
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
    participants.down, participants.no_reply = set(down), set(no_reply)
    assert conn.execute("SELECT status FROM sagas").fetchone()[0] in ("running", "compensating")
    status = run(Orchestrator(conn, participants, sleep=no_wait).run(order_id))

    reference, reference_participants = fresh()
    reference_participants.down, reference_participants.no_reply = set(down), set(no_reply)
    expected = Orchestrator(reference, reference_participants, sleep=no_wait)
    expected.start(order_id, ORDERS[order_id])
    assert status == run(expected.run(order_id))
    assert snapshot(conn) == snapshot(reference)


def test_the_demo_shows_five_endings_a_parked_saga_a_refund_and_a_clean_crash_sweep(capsys):
    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:5]] == [
        "o-1 completed", "o-2 cancelled", "o-3 cancelled", "o-4 parked   ", "o-5 cancelled"]
    assert out[4] == ("o-5 cancelled: reserve stock done -> charge card outcome unknown: "
                      "charge: no reply within 2 s -> refund done -> release done -> cancelled")
    assert out[5].startswith("for a human: o-4 needs 'release' to undo ['reserve stock']")
    assert out[6] == "o-4 after an operator's retry: cancelled"
    assert out[7] == "seats left: 2, money kept: 90, refunded: 90"
    assert out[8] == ("crash sweep: 24 crash points in 5 sagas, 24 resumed to the final state "
                      "of the run without a crash")
    assert len(out) == 9


# --- The three outcomes of a step: done, refused, unknown (issue 20, defect 2) ---------------

class LostReply(Participants):
    """Payments whose reply is lost ``times`` times: the charge happens (or not), then an error.

    ``effect_first`` says whether the card is charged before the error is raised
    (the dangerous case: money taken, orchestrator told nothing) or not at all.
    Every call of every operation is counted.
    """

    def __init__(self, conn: sqlite3.Connection, error: Exception, times: int,
                 effect_first: bool = True) -> None:
        super().__init__(conn)
        self.error, self.times, self.effect_first = error, times, effect_first
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def reserve(self, saga_id: str, data: dict) -> None:
        self._count("reserve")
        super().reserve(saga_id, data)

    def charge(self, saga_id: str, data: dict) -> None:
        self._count("charge")
        if self.effect_first or not self.times:
            super().charge(saga_id, data)
        if self.times:
            self.times -= 1
            raise self.error

    def refund(self, saga_id: str, data: dict) -> None:
        self._count("refund")
        super().refund(saga_id, data)

    def release(self, saga_id: str, data: dict) -> None:
        self._count("release")
        super().release(saga_id, data)


def lost_reply_saga(error: Exception, times: int, effect_first: bool = True,
                    order: dict = ORDERS["o-1"]):
    conn, _ = fresh()
    participants, delays = LostReply(conn, error, times, effect_first), []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    orchestrator = Orchestrator(conn, participants, sleep=sleep, attempts=3)
    orchestrator.start("o-1", order)
    status = run(orchestrator.run("o-1"))
    log = [e for (e,) in conn.execute("SELECT entry FROM saga_log ORDER BY n")]
    return status, log, conn, participants, delays


LOST = [TimeoutError("charge: no reply within 2 s"),
        Unavailable("charge: 503 from the gateway, after the card was charged")]


@pytest.mark.parametrize("error", LOST, ids=["timeout", "unavailable"])
def test_a_charge_that_happened_but_never_answered_is_refunded_and_the_seat_released_once(error):
    status, log, conn, participants, delays = lost_reply_saga(error, times=3)
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 1)]  # refunded
    assert participants.available("cohort seat") == 3  # the seat came back, once
    assert status == "cancelled"
    assert log == ["reserve stock done", f"charge card outcome unknown: {error}",
                   "refund done", "release done", "cancelled"]
    assert participants.calls == {"reserve": 1, "charge": 3, "refund": 1, "release": 1}
    assert delays == [0.5, 1.0]  # resolved by retrying, a bounded number of times
    assert conn.execute("SELECT status, step, error FROM sagas").fetchall() == [
        ("cancelled", -1, None)]


@pytest.mark.parametrize("error", LOST, ids=["timeout", "unavailable"])
def test_an_unknown_outcome_resolved_by_an_idempotent_retry_counts_as_done(error):
    status, log, conn, participants, delays = lost_reply_saga(error, times=1)
    assert status == "completed"
    assert log == ["reserve stock done", "charge card done", "confirm order done", "completed"]
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 0)]  # charged once
    assert participants.calls == {"reserve": 1, "charge": 2}
    assert delays == [0.5]


def test_an_unknown_outcome_that_never_happened_is_compensated_harmlessly():
    error = TimeoutError("charge: no reply within 2 s")
    status, log, conn, participants, _ = lost_reply_saga(error, times=3, effect_first=False)
    assert status == "cancelled"
    assert log[1:] == [f"charge card outcome unknown: {error}", "refund done", "release done",
                       "cancelled"]
    assert conn.execute("SELECT * FROM charges").fetchall() == []  # refund of nothing: no-op
    assert participants.calls == {"reserve": 1, "charge": 3, "refund": 1, "release": 1}
    assert participants.available("cohort seat") == 3


def test_a_step_refused_for_sure_is_not_compensated_and_not_retried():
    status, log, conn, participants, delays = lost_reply_saga(
        TimeoutError("unused"), times=0, order=ORDERS["o-2"])
    assert status == "cancelled"
    assert log == ["reserve stock done", "charge card refused: card declined", "release done",
                   "cancelled"]
    assert participants.calls == {"reserve": 1, "charge": 1, "release": 1}  # no refund
    assert delays == [] and conn.execute("SELECT count(*) FROM charges").fetchone() == (0,)


def test_compensations_are_idempotent_and_harmless_when_the_action_never_happened():
    conn, participants = fresh()
    participants.reserve("o-1", ORDERS["o-1"])
    participants.charge("o-1", ORDERS["o-1"])
    untouched = snapshot(conn)
    participants.refund("o-404", ORDERS["o-1"])  # never charged, never reserved
    participants.release("o-404", ORDERS["o-1"])
    assert snapshot(conn) == untouched
    participants.refund("o-1", ORDERS["o-1"])
    participants.release("o-1", ORDERS["o-1"])
    once = snapshot(conn)
    assert once["charges"] == [("o-1", 90, 1)] and once["stock"] == [("cohort seat", 3)]
    participants.refund("o-1", ORDERS["o-1"])  # a duplicate: a resumed saga asks again
    participants.release("o-1", ORDERS["o-1"])
    assert snapshot(conn) == once


def test_a_crash_after_an_unknown_outcome_or_a_compensation_resumes_to_the_same_state():
    same, tried = run(crash_sweep("o-5", ORDERS["o-5"], no_reply={"charge"}))
    assert (same, tried) == (8, 8)


def test_the_network_fails_before_the_work_when_down_and_after_it_when_the_reply_is_lost():
    conn, participants = fresh()
    participants.down = {"charge"}
    with pytest.raises(Unavailable, match="^charge: service unavailable$"):
        participants.send("charge", "o-1", ORDERS["o-1"])
    assert conn.execute("SELECT count(*) FROM charges").fetchone() == (0,)
    participants.down, participants.no_reply = set(), {"charge"}
    with pytest.raises(TimeoutError, match="^charge: no reply within 2 s$"):
        participants.send("charge", "o-1", ORDERS["o-1"])
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 0)]
    participants.no_reply = set()
    participants.send("refund", "o-1", ORDERS["o-1"])
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 1)]


class Buggy(Participants):
    def charge(self, saga_id: str, data: dict) -> None:
        super().charge(saga_id, data)
        raise KeyError("card_token")  # a bug after the work: not retried, outcome unknown


def test_a_bug_in_a_step_is_an_unknown_outcome_compensated_at_once_without_retries():
    conn, _ = fresh()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    orchestrator = Orchestrator(conn, Buggy(conn), sleep=sleep)
    orchestrator.start("o-1", ORDERS["o-1"])
    assert run(orchestrator.run("o-1")) == "cancelled"
    log = [e for (e,) in conn.execute("SELECT entry FROM saga_log ORDER BY n")]
    assert log[1:] == ["charge card outcome unknown: 'card_token'", "refund done", "release done",
                       "cancelled"]
    assert delays == [] and conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 1)]


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"attempts": 0}, "attempts must be an int >= 1, not 0"),
    ({"attempts": 2.5}, "attempts must be an int >= 1, not 2.5"),
    ({"steps": (Step("pay", "pay", None),)}, "step 'pay': no participant operation 'pay'"),
    ({"steps": (Step("charge card", "charge", "refnud"),)},
     "step 'charge card': no participant operation 'refnud'"),
    ({"steps": (Step("x", "down", None),)}, "step 'x': no participant operation 'down'"),
])
def test_an_orchestrator_with_bad_settings_is_refused_by_name_and_loses_nothing_stored(
        kwargs, problem):
    _, _, conn, participants, _ = saga(ORDERS["o-1"])
    before = snapshot(conn)
    with pytest.raises(ValueError, match=f"^{problem}$"):
        Orchestrator(conn, participants, **kwargs)
    assert snapshot(conn) == before


def test_one_attempt_means_no_retry():
    conn, _ = fresh()
    participants = LostReply(conn, TimeoutError("charge: no reply within 2 s"), times=1)
    orchestrator = Orchestrator(conn, participants, sleep=no_wait, attempts=1)
    orchestrator.start("o-1", ORDERS["o-1"])
    assert run(orchestrator.run("o-1")) == "cancelled"
    assert participants.calls == {"reserve": 1, "charge": 1, "refund": 1, "release": 1}


class Lossy(Participants):
    """A network that loses requests (before the work) and replies (after it) as scripted."""

    def __init__(self, conn: sqlite3.Connection, script: list[str]) -> None:
        super().__init__(conn)
        self.script = list(script)

    def send(self, operation: str, saga_id: str, data: dict) -> None:
        fault = self.script.pop(0) if self.script else "ok"
        if fault == "request lost":
            raise Unavailable(f"{operation}: request lost")
        super().send(operation, saga_id, data)
        if fault == "reply lost":
            raise TimeoutError(f"{operation}: reply lost")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2), st.sampled_from(["ok", "declined"])),
                min_size=1, max_size=4),
       st.lists(st.sampled_from(["ok", "request lost", "reply lost"]), max_size=40),
       st.lists(st.integers(1, 25), max_size=2))
def test_lost_requests_lost_replies_and_crashes_never_keep_money_or_seats_of_a_cancelled_order(
        orders, script, crash_points):
    conn, _ = fresh()
    participants = Lossy(conn, script)
    ids = [f"o-{n}" for n in range(len(orders))]
    for saga_id, (qty, card) in zip(ids, orders):
        Orchestrator(conn, participants).start(
            saga_id, {"item": "cohort seat", "qty": qty, "amount": 90 * qty, "card": card})
    for crash_at in crash_points:
        try:
            for saga_id in ids:
                run(Orchestrator(conn, participants, sleep=no_wait,
                                 checkpoint=CrashAt(crash_at)).run(saga_id))
        except Crash:
            conn.rollback()
    orchestrator = Orchestrator(conn, participants, sleep=no_wait)
    for saga_id in ids:
        run(orchestrator.run(saga_id))
    participants.script.clear()  # the network heals; an operator retries what was parked
    for parked in orchestrator.parked():
        run(orchestrator.retry_parked(parked["saga"]))
    final = dict(conn.execute("SELECT saga_id, status FROM sagas"))
    assert set(final.values()) <= {"completed", "cancelled"}
    done = [s for s in ids if final[s] == "completed"]
    assert sorted(conn.execute("SELECT saga_id FROM charges WHERE refunded = 0")) == [
        (s,) for s in done]  # money is kept exactly for completed orders
    assert sorted(conn.execute("SELECT saga_id FROM reservations WHERE released = 0")) == [
        (s,) for s in done]  # seats are held exactly for completed orders
    assert dict(conn.execute("SELECT saga_id, status FROM orders")) == {
        s: "confirmed" if final[s] == "completed" else "cancelled" for s in ids}
    assert participants.available("cohort seat") == 3 - sum(
        qty for s, (qty, _) in zip(ids, orders) if final[s] == "completed")


def recorder(conn: sqlite3.Connection, seen: list):
    def checkpoint(saga_id: str, name: str) -> None:
        row = conn.execute("SELECT status, step, error FROM sagas WHERE saga_id = ?",
                           (saga_id,)).fetchone()
        seen.append((saga_id, name, *row))
    return checkpoint


def test_each_checkpoint_sees_the_saved_row_of_its_own_saga_refused_and_unknown():
    conn, participants = fresh()
    seen: list[tuple] = []
    orchestrator = Orchestrator(conn, participants, sleep=no_wait, checkpoint=recorder(conn, seen))
    orchestrator.start("o-2", ORDERS["o-2"])
    orchestrator.start("o-5", ORDERS["o-5"])
    assert run(orchestrator.run("o-2")) == "cancelled"
    participants.no_reply = {"charge"}
    assert run(orchestrator.run("o-5")) == "cancelled"
    lost = "charge: no reply within 2 s"
    assert seen == [
        ("o-2", "before reserve stock", "running", 0, None),
        ("o-2", "after reserve stock, unrecorded", "running", 0, None),
        ("o-2", "before charge card", "running", 1, None),
        ("o-2", "before release", "compensating", 0, "card declined"),
        ("o-2", "after release, unrecorded", "compensating", 0, "card declined"),
        ("o-5", "before reserve stock", "running", 0, None),
        ("o-5", "after reserve stock, unrecorded", "running", 0, None),
        ("o-5", "before charge card", "running", 1, None),
        ("o-5", "after charge card, outcome unknown, unrecorded", "running", 1, None),
        ("o-5", "before refund", "compensating", 1, lost),
        ("o-5", "after refund, unrecorded", "compensating", 1, lost),
        ("o-5", "before release", "compensating", 0, None),
        ("o-5", "after release, unrecorded", "compensating", 0, None),
    ]
    assert conn.execute("SELECT saga_id, status, step, error FROM sagas ORDER BY 1").fetchall() == [
        ("o-2", "cancelled", -1, None), ("o-5", "cancelled", -1, None)]


def test_a_completed_saga_rests_past_its_last_step():
    _, _, conn, _, orchestrator = saga(ORDERS["o-1"])
    assert conn.execute("SELECT status, step, error FROM sagas").fetchall() == [
        ("completed", 3, None)]
    assert orchestrator.attempts == 3  # the default
    orchestrator.start("o-free", {"item": "cohort seat", "qty": 1, "amount": 0, "card": "ok"})
    assert run(orchestrator.run("o-free")) == "completed"  # an amount of 0 is allowed


def test_a_saga_parked_two_steps_deep_lists_both_and_an_operator_retry_finishes_it():
    conn, participants = fresh()
    participants.down = {"confirm", "refund"}
    seen: list[tuple] = []
    orchestrator = Orchestrator(conn, participants, sleep=no_wait, checkpoint=recorder(conn, seen))
    orchestrator.start("o-1", ORDERS["o-1"])
    assert run(orchestrator.run("o-1")) == "parked"
    assert orchestrator.parked() == [{
        "saga": "o-1", "compensation": "refund", "still to undo": ["charge card", "reserve stock"],
        "order": ORDERS["o-1"], "error": "refund: service unavailable"}]
    assert ("o-1", "before refund", "compensating", 1, None) in seen  # after "nothing to undo"
    participants.down.clear()
    seen.clear()
    assert run(orchestrator.retry_parked("o-1")) == "cancelled"
    assert seen[0] == ("o-1", "before refund", "compensating", 1, None)
    log = [e for (e,) in conn.execute("SELECT entry FROM saga_log ORDER BY n")]
    assert log[-6:] == ["confirm order: nothing to undo", "parked: refund failed",
                        "retry requested by an operator", "refund done", "release done",
                        "cancelled"]
    assert conn.execute("SELECT * FROM charges").fetchall() == [("o-1", 90, 1)]


def test_crash_at_crashes_at_the_nth_checkpoint_only_naming_it():
    crash = CrashAt(3)
    crash("o-1", "one")
    crash("o-1", "two")
    with pytest.raises(Crash, match="^three$"):
        crash("o-1", "three")
    crash("o-1", "four")
    assert crash.seen == 4
