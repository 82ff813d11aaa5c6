"""A fault campaign: the consumer under crashes, duplicates and reordering.

The pipeline puts this page's patterns together. The transport delivers at
least once and keeps order per key, like Kafka partitions or FIFO message
groups: each user's entries go to one partition, and a consumer that
restarts reads again from the last acknowledged offset. The consumer calls a
flaky downstream with retries in place, then, in one SQLite transaction,
records the message in its inbox and appends the entry to the user's
timeline, or stores a dead letter if the payload is malformed.

A scenario draws a journal (some entries malformed, some published twice by
a retrying producer) and a fault plan from one random source: crashes before
handling, inside the transaction and between commit and acknowledgement;
lost acknowledgements; transient downstream failures; and any interleaving
of partitions, which is all the reordering this transport allows. The
property: the timeline and the dead letters equal those of a fault-free run.

Each SQLite connection stands for the database file: a crash rolls back its
open transaction, which is what SQLite does when a process dies mid-write.
"""

from __future__ import annotations

import json
import random
import sqlite3
import zlib
from collections import Counter
from dataclasses import dataclass, field

CRASH_POINTS = ("before handling", "inside the transaction", "after commit, before ack")
MOODS = {"low": "needs care", "ok": "steady", "good": "thriving"}
HOSTILE = [b'{"user": "ana", "mood": "ok"', b"\xff\xfe", b"[]", b'{"words": NaN}',
           b'{"user": "ana", "mood": "ok", "words": "many"}', b'{"user": 7}', b"",
           b'{"user": "ana", "mood": "furious", "words": 3}']


class Crash(Exception):
    """The consumer process dies here."""


class TransientError(Exception):
    """The downstream failed this time; it may answer next time."""


@dataclass(frozen=True)
class Variant:
    """How the consumer is built; only the first is correct."""

    name: str
    inbox: str = "same transaction"  # or "second transaction", or "none"
    ack_before_commit: bool = False


CORRECT = Variant("inbox in the same transaction (this page)")
BROKEN = (Variant("no inbox", inbox="none"),
          Variant("inbox in a second transaction", inbox="second transaction"),
          Variant("ack before commit", ack_before_commit=True))


@dataclass(frozen=True)
class Record:
    """What the producer appended to the log."""

    message_id: str
    user: str
    body: bytes


@dataclass
class Faults:
    """Draws every fault from one random source (None: no faults), and counts them.

    Each kind of fault has a budget per scenario, so that every run ends.
    """

    rng: random.Random | None
    budget: int = 8
    tried: Counter[str] = field(default_factory=Counter)

    def happens(self, what: str, probability: float) -> bool:
        if self.rng is None or self.tried[what] >= self.budget:
            return False
        hit = self.rng.random() < probability
        self.tried[what] += hit
        return hit

    def crash(self, point: str) -> None:
        if self.happens("crashes", 0.07):
            self.tried[f"crash {point}"] += 1
            raise Crash(point)


def parse(body: bytes) -> dict[str, object]:
    """Validate a journal entry; ValueError names what is wrong."""
    try:
        entry = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("user"), str):
        raise ValueError("no user")
    if entry.get("mood") not in MOODS:
        raise ValueError(f"unknown mood {entry.get('mood')!r}")
    if type(entry.get("words")) is not int or entry["words"] < 0:
        raise ValueError(f"words must be a count, not {entry.get('words')!r}")
    return entry


# --8<-- [start:consumer]
class Consumer:
    """One consumer process: positions and retry counters live only in memory."""

    def __init__(self, conn: sqlite3.Connection, log: list[list[tuple[int, Record]]],
                 committed: list[int], faults: Faults, variant: Variant) -> None:
        self.conn, self.log, self.committed = conn, log, committed
        self.faults, self.variant = faults, variant
        self.position = list(committed)  # a restart reads again from the committed offsets

    def deliver(self, partition: int) -> None:
        """Handle the next record of ``partition``; faults may interrupt it anywhere."""
        _, record = self.log[partition][self.position[partition]]
        self.faults.crash("before handling")
        try:
            entry, reason = parse(record.body), ""
            label = self.call_downstream(entry)
        except ValueError as error:
            entry, reason = None, str(error)
        if self.variant.ack_before_commit:
            self.ack(partition)
        self.conn.execute("BEGIN IMMEDIATE")
        if self.seen_before(record.message_id):
            self.conn.execute("COMMIT")  # a duplicate: already applied
        else:
            if entry is None:
                self.conn.execute("INSERT INTO dead_letters VALUES (?, ?)",
                                  (record.message_id, reason))
            else:
                self.conn.execute(
                    "INSERT INTO timeline SELECT ?, count(*) + 1, ?, ?, ? FROM timeline"
                    " WHERE user = ?", (record.user, record.message_id, label,
                                        entry["words"], record.user))
            self.faults.crash("inside the transaction")
            self.conn.execute("COMMIT")
            if self.variant.inbox == "second transaction":
                self.faults.crash("after commit, before ack")
                self.conn.execute("INSERT INTO inbox VALUES (?)", (record.message_id,))
        self.faults.crash("after commit, before ack")
        if not self.variant.ack_before_commit:
            self.ack(partition)

    def seen_before(self, message_id: str) -> bool:
        """The inbox check; the broken variants get it wrong in two different ways."""
        if self.variant.inbox == "same transaction":  # commits with the effect, or not at all
            return self.conn.execute("INSERT INTO inbox VALUES (?) ON CONFLICT DO NOTHING",
                                     (message_id,)).rowcount == 0
        if self.variant.inbox == "second transaction":
            return self.conn.execute("SELECT 1 FROM inbox WHERE message_id = ?",
                                     (message_id,)).fetchone() is not None
        return False

    def call_downstream(self, entry: dict[str, object]) -> str:
        """Ask the mood service; it may fail up to three times, within four attempts."""
        failures = 0
        while failures < 3 and self.faults.happens("transient failures retried", 0.15):
            failures += 1  # retried in place (after a backoff): the partition keeps its order
        return MOODS[str(entry["mood"])]

    def ack(self, partition: int) -> None:
        """Move past the record; the broker may lose the acknowledgement."""
        self.position[partition] += 1
        if not self.faults.happens("acks lost", 0.1):
            self.committed[partition] = self.position[partition]
# --8<-- [end:consumer]


SCHEMA = """
CREATE TABLE inbox (message_id TEXT PRIMARY KEY);
CREATE TABLE timeline (user TEXT, position INT, message_id TEXT, mood TEXT, words INT);
CREATE TABLE dead_letters (message_id TEXT, reason TEXT);
"""


def journal(rng: random.Random) -> list[Record]:
    """A random journal: a few users, some malformed entries, some published twice."""
    users = ["ana", "ben", "caro", "dev"][:rng.randint(1, 4)]
    records: list[Record] = []
    for n in range(rng.randint(1, 20)):
        user = rng.choice(users)
        body = (rng.choice(HOSTILE) if rng.random() < 0.1 else json.dumps(
            {"user": user, "mood": rng.choice(list(MOODS)), "words": rng.randint(0, 400)}).encode())
        records.append(Record(f"m-{n}", user, body))
        if rng.random() < 0.15:  # the producer's retry appends it again, later
            records.insert(rng.randint(len(records), len(records) + 2), records[-1])
    return records


# --8<-- [start:scenario]
def run(records: list[Record], partitions: int, faults: Faults,
        variant: Variant = CORRECT) -> tuple[list[tuple], Counter[str]]:
    """Consume the journal until every partition is acknowledged; return the final state."""
    log: list[list[tuple[int, Record]]] = [[] for _ in range(partitions)]
    for seq, record in enumerate(records):  # seq: its place in publish order
        log[zlib.crc32(record.user.encode()) % partitions].append((seq, record))
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    committed = [0] * partitions
    consumer = Consumer(conn, log, committed, faults, variant)
    seen: set[str] = set()
    last_seq = -1
    while any(committed[p] < len(log[p]) for p in range(partitions)):
        ready = [p for p in range(partitions) if consumer.position[p] < len(log[p])]
        if not ready:  # acks were lost: nothing left to read, so restart and re-read
            consumer = Consumer(conn, log, committed, faults, variant)
            continue
        partition = faults.rng.choice(ready) if faults.rng else min(  # publish order
            ready, key=lambda p: log[p][consumer.position[p]][0])
        seq, record = log[partition][consumer.position[partition]]
        faults.tried["deliveries"] += 1
        faults.tried["duplicates delivered"] += record.message_id in seen
        faults.tried["out of publish order"] += seq < last_seq
        seen.add(record.message_id)
        last_seq = seq
        try:
            consumer.deliver(partition)
        except Crash:
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # what SQLite does when the process dies
            consumer = Consumer(conn, log, committed, faults, variant)
    state = conn.execute("SELECT * FROM timeline ORDER BY user, position").fetchall()
    state += conn.execute("SELECT * FROM dead_letters ORDER BY message_id").fetchall()
    return state, faults.tried


def scenario(rng: random.Random, variant: Variant = CORRECT) -> tuple[bool, Counter[str]]:
    """Draw a journal and a fault plan; True if the faulty run ends as the fault-free one."""
    records, partitions = journal(rng), rng.randint(1, 3)
    expected, _ = run(records, partitions, Faults(None))
    actual, tried = run(records, partitions, Faults(rng), variant)
    tried.update(published=len(records), malformed=sum(1 for r in set(records) if _bad(r)),
                 **{"published twice": len(records) - len(set(records))})
    return actual == expected, tried
# --8<-- [end:scenario]


def _bad(record: Record) -> bool:
    try:
        parse(record.body)
    except ValueError:
        return True
    return False


def campaign(seed: int, scenarios: int, variant: Variant = CORRECT) -> tuple[int, Counter[str]]:
    """Run ``scenarios`` seeded scenarios; return how many ended equal, and what was tried."""
    equal, tried = 0, Counter[str]()
    for n in range(scenarios):
        ok, counts = scenario(random.Random(f"{seed}-{n}"), variant)
        equal += ok
        tried.update(counts)
    return equal, tried


def main() -> None:
    """A fixed-seed campaign against the correct consumer and three broken ones."""
    seed, scenarios = 2024, 300
    equal, tried = campaign(seed, scenarios)
    print(f"{scenarios} scenarios, seed {seed}: what the faults did")
    rows = ["published", "published twice", "malformed", "deliveries", "duplicates delivered",
            "out of publish order", "crashes", *(f"crash {p}" for p in CRASH_POINTS),
            "acks lost", "transient failures retried"]
    for row in rows:
        indent = "  " if row.startswith("crash ") else ""
        print(f"  {indent + row:<38}{tried[row]:>7,}")
    print("final state equal to the fault-free run")
    for variant in (CORRECT, *BROKEN):
        same = equal if variant is CORRECT else campaign(seed, scenarios, variant)[0]
        print(f"  {variant.name:<42}{same:>4} / {scenarios}")


if __name__ == "__main__":
    main()
