"""An orchestrated saga with its state in SQLite: reserve, charge, confirm, or compensate.

The orchestrator (a process manager) runs the steps of an order one by one:
reserve stock, charge the card, confirm the order. A step that fails for a
business reason (card declined, no stock) starts the compensations of the
steps already done, newest first. A compensation that fails is retried with
backoff and, if it still fails, the saga is *parked* with everything a human
needs to finish it.

The saga's position is a row in SQLite, saved after every step. A process
that dies anywhere resumes from that row. The step it was running when it
died is run again, so every participant operation is idempotent: it is keyed
by the saga id and does nothing the second time.
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
    """A business refusal: the saga must compensate."""


class Unavailable(Exception):
    """A participant is down: worth retrying."""


# --8<-- [start:participants]
class Participants:
    """Inventory, payments and orders; each operation is idempotent per saga id."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.down: set[str] = set()  # names of operations that fail for now (for the demo)

    def _check(self, operation: str) -> None:
        if operation in self.down:
            raise Unavailable(f"{operation}: service unavailable")

    def reserve(self, saga_id: str, data: dict) -> None:
        self._check("reserve")
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
        self._check("release")
        with self.conn:
            if self.conn.execute("UPDATE reservations SET released = 1 WHERE saga_id = ?"
                                 " AND released = 0", (saga_id,)).rowcount:
                self.conn.execute("UPDATE stock SET available = available + ? WHERE item = ?",
                                  (data["qty"], data["item"]))

    def charge(self, saga_id: str, data: dict) -> None:
        self._check("charge")
        if data["card"] == "declined":
            raise StepFailed("card declined")
        with self.conn:
            self.conn.execute("INSERT INTO charges (saga_id, amount) VALUES (?, ?)"
                              " ON CONFLICT DO NOTHING", (saga_id, data["amount"]))

    def refund(self, saga_id: str, data: dict) -> None:
        self._check("refund")
        with self.conn:
            self.conn.execute("UPDATE charges SET refunded = 1 WHERE saga_id = ?", (saga_id,))

    def confirm(self, saga_id: str, data: dict) -> None:
        self._check("confirm")
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
        checkpoint: called with (saga id, checkpoint name) at every point where
            a crash is interesting; tests make it kill the process.
        sleep: awaited between compensation attempts (fake it in tests).
        attempts: tries per operation before giving up on it.
        steps: the saga's steps, in order.
    """

    def __init__(self, conn: sqlite3.Connection, participants: Participants, *,
                 checkpoint: Callable[[str, str], None] = lambda saga, name: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 attempts: int = 3, steps: tuple[Step, ...] = STEPS) -> None:
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
                except Exception as error:  # refused, unavailable, or a bug: undo what was done
                    self._save(saga_id, "compensating", step - 1, f"{name} failed: {error}",
                               error=str(error))
                    continue
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
                except Exception as error:  # still failing after retries: a human must finish
                    self._save(saga_id, "parked", step, f"parked: {undo} failed",
                               error=str(error))
                    continue
                self._checkpoint(saga_id, f"after {undo}, unrecorded")
                self._save(saga_id, "compensating", step - 1, f"{undo} done")

    async def _call(self, operation: str, saga_id: str, data: dict) -> None:
        attempt = 1
        while True:
            try:
                return getattr(self.participants, operation)(saga_id, data)
            except Unavailable:
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
          "o-4": {"item": "cohort seat", "qty": 1, "amount": 90, "card": "declined"}}


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


async def crash_sweep(saga_id: str, data: dict, down: set[str] = frozenset()) -> tuple[int, int]:
    """Crash at each checkpoint in turn, resume, compare with the run that never crashed."""

    async def no_wait(seconds: float) -> None:
        pass

    conn, participants = fresh()
    participants.down = set(down)
    names: list[str] = []
    reference = Orchestrator(conn, participants, sleep=no_wait,
                             checkpoint=lambda saga, name: names.append(name))
    reference.start(saga_id, data)
    await reference.run(saga_id)
    expected, same = snapshot(conn), 0
    for n in range(1, len(names) + 1):
        conn, participants = fresh()
        participants.down = set(down)
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
    """Four orders for three seats: confirmed, declined, out of stock, parked; then crashes."""

    async def no_wait(seconds: float) -> None:  # the demo does not really wait
        pass

    conn, participants = fresh()
    orchestrator = Orchestrator(conn, participants, sleep=no_wait)
    for saga_id, data in ORDERS.items():
        participants.down = {"release"} if saga_id == "o-4" else set()
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
    print(f"seats left: {participants.available('cohort seat')}, charged: "
          f"{conn.execute('SELECT sum(amount) FROM charges WHERE refunded = 0').fetchone()[0]}")

    tried = same = 0
    for saga_id, data in ORDERS.items():
        ok, points = await crash_sweep(saga_id, data, {"release"} if saga_id == "o-4" else set())
        same, tried = same + ok, tried + points
    print(f"crash sweep: {tried} crash points in {len(ORDERS)} sagas, "
          f"{same} resumed to the final state of the run without a crash")


if __name__ == "__main__":
    asyncio.run(main())
