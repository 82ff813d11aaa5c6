"""An orchestrated saga with its state in SQLite: reserve, charge, confirm, or compensate.

The orchestrator (a process manager) runs the steps of an order one by one:
reserve stock, charge the card, confirm the order. Each step ends in one of
three outcomes. *Done*: the participant answered yes. *Refused*: it answered
no (card declined, no stock), so nothing happened. *Unknown*: no answer (a
timeout, a 503), so the step may or may not have happened. An unknown step
is retried with the same key a bounded number of times; a retry of a step
that did happen does nothing again and answers, which resolves it. A
refused step starts the compensations of the steps done before it, newest
first; a step whose outcome stays unknown is compensated too, since it may
have happened. A compensation that fails is retried with backoff and, if
it still fails, the saga is *parked* with everything a human needs to
finish it.

The saga's position is a row in SQLite, saved after every step. A process
that dies anywhere resumes from that row. The step it was running when it
died is run again, so every participant operation is idempotent: it is keyed
by the saga id and does nothing the second time. Every compensation is also
harmless when its action never happened: refunding a charge that does not
exist does nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (saga_id TEXT PRIMARY KEY, status TEXT, step INT,
                                  data TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS saga_log (saga_id TEXT, n INT, entry TEXT);
CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, available INT CHECK (available >= 0));
CREATE TABLE IF NOT EXISTS reservations (saga_id TEXT PRIMARY KEY, item TEXT, qty INT,
                                         released INT DEFAULT 0);
CREATE TABLE IF NOT EXISTS charges (saga_id TEXT PRIMARY KEY, amount INT, refunded INT DEFAULT 0);
CREATE TABLE IF NOT EXISTS orders (saga_id TEXT PRIMARY KEY, status TEXT);
"""


class StepFailed(Exception):
    """A refusal for a business reason: nothing happened, the steps before are undone."""


class Unavailable(Exception):
    """A participant did not answer properly: the outcome is unknown, worth retrying."""


# --8<-- [start:participants]
class Participants:
    """Inventory, payments and orders, all keyed by the saga id.

    Each operation is idempotent per saga id, a refusal (``StepFailed``) means
    nothing happened, and a compensation of something that never happened
    does nothing.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.down: set[str] = set()  # for the demo: operations whose request never arrives
        self.no_reply: set[str] = set()  # for the demo: operations whose answer is lost

    def send(self, operation: str, saga_id: str, data: dict) -> None:
        """One request over the network, which may fail before or after the work is done."""
        if operation in self.down:
            raise Unavailable(f"{operation}: service unavailable")
        getattr(self, operation)(saga_id, data)
        if operation in self.no_reply:  # done, but the orchestrator will never know
            raise TimeoutError(f"{operation}: no reply within 2 s")

    def reserve(self, saga_id: str, data: dict) -> None:
        with self.conn:
            if self.conn.execute("SELECT 1 FROM reservations WHERE saga_id = ?",
                                 (saga_id,)).fetchone():
                return  # done before: a resumed saga asked again
            try:
                self.conn.execute("UPDATE stock SET available = available - ? WHERE item = ?",
                                  (data["qty"], data["item"]))
            except sqlite3.IntegrityError:
                left = self.available(data["item"])
                raise StepFailed(f"{data['qty']} wanted, {left} left") from None
            self.conn.execute("INSERT INTO reservations (saga_id, item, qty) VALUES (?, ?, ?)",
                              (saga_id, data["item"], data["qty"]))

    def release(self, saga_id: str, data: dict) -> None:
        with self.conn:
            if self.conn.execute("UPDATE reservations SET released = 1 WHERE saga_id = ?"
                                 " AND released = 0", (saga_id,)).rowcount:
                self.conn.execute("UPDATE stock SET available = available + ? WHERE item = ?",
                                  (data["qty"], data["item"]))

    def charge(self, saga_id: str, data: dict) -> None:
        if data["card"] == "declined":
            raise StepFailed("card declined")
        with self.conn:
            self.conn.execute("INSERT INTO charges (saga_id, amount) VALUES (?, ?)"
                              " ON CONFLICT DO NOTHING", (saga_id, data["amount"]))

    def refund(self, saga_id: str, data: dict) -> None:
        with self.conn:  # no charge for this saga id: nothing to refund, nothing done
            self.conn.execute("UPDATE charges SET refunded = 1 WHERE saga_id = ?", (saga_id,))

    def confirm(self, saga_id: str, data: dict) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO orders VALUES (?, 'confirmed')", (saga_id,))

    def available(self, item: str) -> int:
        row = self.conn.execute("SELECT available FROM stock WHERE item = ?", (item,)).fetchone()
        return row[0]
# --8<-- [end:participants]


@dataclass(frozen=True)
class Step:
    """One step of the saga and the operation that undoes it (None: nothing to undo)."""

    name: str
    action: str
    compensation: str | None


STEPS = (Step("reserve stock", "reserve", "release"),
         Step("charge card", "charge", "refund"),
         Step("confirm order", "confirm", None))
FINAL = ("completed", "cancelled", "parked")


# --8<-- [start:orchestrator]
class Orchestrator:
    """Runs sagas to completion, compensation or parking; resumable from SQLite.

    Args:
        conn: the database holding the saga rows (and, here, the participants).
        participants: the services the steps and compensations are sent to.
        checkpoint: called with (saga id, checkpoint name) at every point where
            a crash is interesting; tests make it kill the process.
        sleep: awaited between the attempts of an operation (fake it in tests).
        attempts: tries per operation while its outcome is unknown.
        steps: the saga's steps, in order.

    Raises:
        ValueError: ``attempts`` is not a positive int, or a step names an
            operation the participants do not have.
    """

    def __init__(self, conn: sqlite3.Connection, participants: Participants, *,
                 checkpoint: Callable[[str, str], None] = lambda saga, name: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 attempts: int = 3, steps: tuple[Step, ...] = STEPS) -> None:
        if type(attempts) is not int or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, not {attempts!r}")
        for step in steps:
            for operation in (step.action, step.compensation):
                if operation is not None and not callable(getattr(participants, operation, None)):
                    raise ValueError(f"step {step.name!r}: no participant operation "
                                     f"{operation!r}")
        conn.executescript(SCHEMA)
        self.conn, self.participants, self.attempts = conn, participants, attempts
        self.steps = steps
        self._checkpoint, self._sleep = checkpoint, sleep

    def start(self, saga_id: str, data: dict) -> None:
        """Record a new saga; starting the same saga twice changes nothing.

        Raises:
            ValueError: the order lacks a field or has one of the wrong type.
        """
        for name, kind in (("item", str), ("qty", int), ("amount", int), ("card", str)):
            if type(data.get(name)) is not kind:
                raise ValueError(f"order {saga_id!r}: {name!r} must be {kind.__name__}, "
                                 f"not {data.get(name)!r}")
        if data["qty"] < 1 or data["amount"] < 0:
            raise ValueError(f"order {saga_id!r}: qty must be >= 1 and amount >= 0")
        with self.conn:
            self.conn.execute("INSERT INTO sagas VALUES (?, 'running', 0, ?, NULL)"
                              " ON CONFLICT DO NOTHING", (saga_id, json.dumps(data)))

    async def run(self, saga_id: str) -> str:
        """Advance the saga from wherever its row says it is; return its final status."""
        while True:
            status, step, data = self._load(saga_id)
            if status in FINAL:
                return status
            if status == "running" and step == len(self.steps):
                self._save(saga_id, "completed", step, "completed")
            elif status == "running":
                name = self.steps[step].name
                self._checkpoint(saga_id, f"before {name}")
                try:
                    await self._call(self.steps[step].action, saga_id, data)
                except StepFailed as refusal:  # refused for sure: nothing happened to undo
                    self._save(saga_id, "compensating", step - 1, f"{name} refused: {refusal}",
                               error=str(refusal))
                except Exception as error:  # noqa: BLE001 - unknown after retries: may have happened
                    self._checkpoint(saga_id, f"after {name}, outcome unknown, unrecorded")
                    self._save(saga_id, "compensating", step, f"{name} outcome unknown: {error}",
                               error=str(error))
                else:
                    self._checkpoint(saga_id, f"after {name}, unrecorded")
                    self._save(saga_id, "running", step + 1, f"{name} done")
            elif step < 0:
                self._save(saga_id, "cancelled", step, "cancelled")
                with self.conn:
                    self.conn.execute("INSERT OR REPLACE INTO orders VALUES (?, 'cancelled')",
                                      (saga_id,))
            elif (undo := self.steps[step].compensation) is None:
                self._save(saga_id, "compensating", step - 1,
                           f"{self.steps[step].name}: nothing to undo")
            else:
                self._checkpoint(saga_id, f"before {undo}")
                try:
                    await self._call(undo, saga_id, data)
                except Exception as error:  # noqa: BLE001 - still failing: a human must finish
                    self._save(saga_id, "parked", step, f"parked: {undo} failed",
                               error=str(error))
                    continue
                self._checkpoint(saga_id, f"after {undo}, unrecorded")
                self._save(saga_id, "compensating", step - 1, f"{undo} done")

    async def _call(self, operation: str, saga_id: str, data: dict) -> None:
        """Send an operation; while its outcome is unknown, send it again, with backoff.

        Every attempt carries the same key, the saga id, so a retry of an
        operation that did happen does nothing a second time and just answers.
        A refusal or a bug is not retried.
        """
        attempt = 1
        while True:
            try:
                return self.participants.send(operation, saga_id, data)
            except (Unavailable, TimeoutError):
                if attempt >= self.attempts:
                    raise
                await self._sleep(0.5 * 2 ** (attempt - 1))
                attempt += 1

    def _load(self, saga_id: str) -> tuple[str, int, dict]:
        row = self.conn.execute("SELECT status, step, data FROM sagas WHERE saga_id = ?",
                                (saga_id,)).fetchone()
        if row is None:
            raise KeyError(f"no saga {saga_id!r}")
        return row[0], row[1], json.loads(row[2])

    def _save(self, saga_id: str, status: str, step: int, entry: str, error: str = "") -> None:
        with self.conn:  # the new position and its log line commit together
            self.conn.execute("UPDATE sagas SET status = ?, step = ?, error = ? WHERE saga_id = ?",
                              (status, step, error or None, saga_id))
            self.conn.execute("INSERT INTO saga_log SELECT ?, count(*) + 1, ? FROM saga_log"
                              " WHERE saga_id = ?", (saga_id, entry, saga_id))

    async def retry_parked(self, saga_id: str) -> str:
        """After a human fixed the cause: resume the compensations of a parked saga."""
        status, step, _ = self._load(saga_id)
        if status != "parked":
            raise ValueError(f"saga {saga_id!r} is {status}, not parked")
        self._save(saga_id, "compensating", step, "retry requested by an operator")
        return await self.run(saga_id)
# --8<-- [end:orchestrator]

    def parked(self) -> list[dict]:
        """What a human needs for each parked saga: the order, the step, the error."""
        rows = self.conn.execute("SELECT saga_id, step, data, error FROM sagas"
                                 " WHERE status = 'parked' ORDER BY saga_id").fetchall()
        return [{"saga": s, "compensation": self.steps[step].compensation,
                 "still to undo": [self.steps[i].name for i in range(step, -1, -1)],
                 "order": json.loads(d), "error": e} for s, step, d, e in rows]


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every table, sorted: what 'the same final state' means."""
    tables = ["sagas", "saga_log", "stock", "reservations", "charges", "orders"]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


ORDERS = {"o-1": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "ok"},
          "o-2": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "declined"},
          "o-3": {"item": "cohort seat", "qty": 5, "amount": 450, "card": "ok"},
          "o-4": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "declined"},
          "o-5": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "ok"}}
FAULTS = {"o-4": {"down": {"release"}},  # inventory is down when o-4 must release its seat
          "o-5": {"no_reply": {"charge"}}}  # payments charge o-5's card but never answer


def fresh(path: str = ":memory:") -> tuple[sqlite3.Connection, Participants]:
    """A database with 3 seats in stock, and the participants on it."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    with conn:
        conn.execute("INSERT OR IGNORE INTO stock VALUES ('cohort seat', 3)")
    return conn, Participants(conn)


class Crash(BaseException):
    """The process dies here (BaseException: no ``except Exception`` can catch it)."""


class CrashAt:
    """A checkpoint hook that crashes at the ``n``-th checkpoint it sees."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def __call__(self, saga_id: str, name: str) -> None:
        self.seen += 1
        if self.seen == self.n:
            raise Crash(name)


async def crash_sweep(saga_id: str, data: dict, down: set[str] = frozenset(),
                      no_reply: set[str] = frozenset()) -> tuple[int, int]:
    """Crash at each checkpoint in turn, resume, compare with the run that never crashed."""

    async def no_wait(seconds: float) -> None:
        pass

    conn, participants = fresh()
    participants.down, participants.no_reply = set(down), set(no_reply)
    names: list[str] = []
    reference = Orchestrator(conn, participants, sleep=no_wait,
                             checkpoint=lambda saga, name: names.append(name))
    reference.start(saga_id, data)
    await reference.run(saga_id)
    expected, same = snapshot(conn), 0
    for n in range(1, len(names) + 1):
        conn, participants = fresh()
        participants.down, participants.no_reply = set(down), set(no_reply)
        orchestrator = Orchestrator(conn, participants, sleep=no_wait, checkpoint=CrashAt(n))
        orchestrator.start(saga_id, data)
        try:
            await orchestrator.run(saga_id)
        except Crash:
            conn.rollback()  # the process is gone: nothing uncommitted survives
        await Orchestrator(conn, participants, sleep=no_wait).run(saga_id)
        same += snapshot(conn) == expected
    return same, len(names)


async def main() -> None:
    """Five orders for three seats: done, refused twice, parked, unknown; then crashes."""

    async def no_wait(seconds: float) -> None:  # the demo does not really wait
        pass

    conn, participants = fresh()
    orchestrator = Orchestrator(conn, participants, sleep=no_wait)
    for saga_id, data in ORDERS.items():
        faults = FAULTS.get(saga_id, {})
        participants.down = set(faults.get("down", ()))
        participants.no_reply = set(faults.get("no_reply", ()))
        orchestrator.start(saga_id, data)
        status = await orchestrator.run(saga_id)
        log = conn.execute("SELECT entry FROM saga_log WHERE saga_id = ? ORDER BY n",
                           (saga_id,)).fetchall()
        print(f"{saga_id} {status:<9}: " + " -> ".join(entry for (entry,) in log))
    for parked in orchestrator.parked():
        print(f"for a human: {parked['saga']} needs {parked['compensation']!r} to undo "
              f"{parked['still to undo']}; last error {parked['error']!r}; "
              f"order {parked['order']}")
    participants.down.clear()  # the inventory service is back
    print(f"o-4 after an operator's retry: {await orchestrator.retry_parked('o-4')}")
    kept, refunded = conn.execute("SELECT sum(amount * (1 - refunded)), sum(amount * refunded)"
                                  " FROM charges").fetchone()
    print(f"seats left: {participants.available('cohort seat')}, money kept: {kept}, "
          f"refunded: {refunded}")

    tried = same = 0
    for saga_id, data in ORDERS.items():
        ok, points = await crash_sweep(saga_id, data, **FAULTS.get(saga_id, {}))
        same, tried = same + ok, tried + points
    print(f"crash sweep: {tried} crash points in {len(ORDERS)} sagas, "
          f"{same} resumed to the final state of the run without a crash")


if __name__ == "__main__":
    asyncio.run(main())
