"""dlq: inspect, filter and redrive dead letters kept in SQLite.

Consumers write their dead letters to a SQLite file (``Store.add``) and
register their name and running version at start-up
(``Store.register_consumer``). An operator then uses the command line::

    python error_handling_dlq_cli.py --db dead_letters.sqlite3 list
    python error_handling_dlq_cli.py filter --consumer mood-agent --reason max_attempts
    python error_handling_dlq_cli.py show 7
    python error_handling_dlq_cli.py redrive --consumer mood-agent --dry-run

``redrive`` puts messages back on their source queue and marks the letters
redriven (they are kept, for the audit trail). It refuses, and redrives
nothing, when the consumer still runs the version the letters failed under:
the same code would fail the same way. ``--force`` overrides that, after a fix
in configuration or in a dependency, say. Exit codes: 0 done, 1 bad input or
nothing found, 3 redrive refused. Without arguments it runs a demonstration on
an in-memory store.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shlex
import sqlite3
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, consumer TEXT NOT NULL,
    consumer_version TEXT NOT NULL, reason TEXT NOT NULL, error TEXT NOT NULL,
    attempts INTEGER NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL,
    dead_at REAL NOT NULL, redriven_at REAL);
CREATE TABLE IF NOT EXISTS consumers (name TEXT PRIMARY KEY, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL);
"""


class Store:
    """Dead letters, the consumers' running versions, and the queue redrives go back to."""

    def __init__(self, path: str = ":memory:", *, create: bool = True) -> None:
        if not create and path != ":memory:" and not os.path.exists(path):
            raise FileNotFoundError(f"no dead-letter store at {path!r} (set --db or DLQ_DB)")
        self.db = sqlite3.connect(path)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def add(self, *, source: str, consumer: str, consumer_version: str, reason: str, error: str,
            attempts: int, headers: Mapping[str, str], body: bytes, dead_at: float) -> int:
        """Store one dead letter; return its id."""
        with self.db:
            return self.db.execute(
                "INSERT INTO dead_letters (source, consumer, consumer_version, reason, error,"
                " attempts, headers, body, dead_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (source, consumer, consumer_version, reason, error, attempts,
                 json.dumps(dict(headers)), body, dead_at)).lastrowid

    def register_consumer(self, name: str, version: str) -> None:
        """Called by a consumer at start-up: this is the version now running."""
        with self.db:
            self.db.execute("INSERT INTO consumers VALUES (?, ?) ON CONFLICT (name)"
                            " DO UPDATE SET version = excluded.version", (name, version))

    def select(self, args: argparse.Namespace) -> list[sqlite3.Row]:
        """The letters matching the command line's ids and filters, oldest first."""
        where, params = [], []
        if getattr(args, "ids", None):
            where.append(f"id IN ({','.join('?' * len(args.ids))})")
            params += args.ids
        for column in ("consumer", "reason", "source"):
            if getattr(args, column):
                where.append(f"{column} = ?")
                params.append(getattr(args, column))
        if args.error:
            where.append("instr(error, ?) > 0")
            params.append(args.error)
        if args.status != "all" and not getattr(args, "ids", None):
            where.append("redriven_at IS NULL" if args.status == "waiting" else "redriven_at IS NOT NULL")
        sql = "SELECT * FROM dead_letters" + (" WHERE " + " AND ".join(where) if where else "")
        return self.db.execute(sql + " ORDER BY dead_at, id LIMIT ?", [*params, args.limit]).fetchall()

    # --8<-- [start:redrive]
    def redrive(self, letters: list[sqlite3.Row], *, force: bool, now: float,
                dry_run: bool = False) -> list[str]:
        """Put the letters back on their queues, all or none; return the refusals."""
        running = dict(self.db.execute("SELECT name, version FROM consumers").fetchall())
        refusals = []
        for letter in letters:
            version = running.get(letter["consumer"])
            if letter["redriven_at"] is not None:
                refusals.append(f"#{letter['id']}: already redriven at {iso(letter['redriven_at'])}")
            elif force:
                continue
            elif version is None:
                refusals.append(f"#{letter['id']}: {letter['consumer']} has registered no "
                                "version, so nothing shows a fix was deployed")
            elif version == letter["consumer_version"]:
                refusals.append(f"#{letter['id']}: {letter['consumer']} still runs "
                                f"{version}, the version that failed; it would fail the same way")
        if refusals or dry_run:
            return refusals
        try:
            with self.db:  # one transaction: every letter goes back, or none does
                for letter in letters:
                    claimed = self.db.execute(
                        "UPDATE dead_letters SET redriven_at = ? WHERE id = ?"
                        " AND redriven_at IS NULL", (now, letter["id"])).rowcount
                    if not claimed:  # another operator redrove it since we read it
                        raise LookupError(f"#{letter['id']}: redriven meanwhile by someone else")
                    headers = json.loads(letter["headers"]) | {"x-redriven-from": str(letter["id"])}
                    self.db.execute("INSERT INTO queue (source, headers, body) VALUES (?, ?, ?)",
                                    (letter["source"], json.dumps(headers), letter["body"]))
        except LookupError as conflict:
            return [str(conflict)]
        return []
    # --8<-- [end:redrive]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def body_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


def parser() -> argparse.ArgumentParser:
    """The command line: global --db, then one subcommand."""
    p = argparse.ArgumentParser(prog="dlq", description=__doc__.splitlines()[0])
    p.add_argument("--db", default=os.environ.get("DLQ_DB", "dead_letters.sqlite3"),
                   help="SQLite file (default: $DLQ_DB or dead_letters.sqlite3)")
    commands = p.add_subparsers(dest="command", required=True)
    filters = argparse.ArgumentParser(add_help=False)
    for name in ("consumer", "reason", "source"):
        filters.add_argument(f"--{name}", help=f"only letters with this {name}")
    filters.add_argument("--error", help="only letters whose error contains this text")
    filters.add_argument("--status", choices=["waiting", "redriven", "all"], default="waiting")
    filters.add_argument("--limit", type=int, default=1000, help="at most this many letters")
    commands.add_parser("list", parents=[filters], help="count letters by consumer, reason, error")
    commands.add_parser("filter", parents=[filters], help="one line per matching letter")
    show = commands.add_parser("show", help="everything about one letter")
    show.add_argument("id", type=int)
    redrive = commands.add_parser("redrive", parents=[filters], help="send letters back")
    redrive.add_argument("ids", type=int, nargs="*", help="letter ids (or use filters)")
    redrive.add_argument("--all", action="store_true", help="allow redriving without a filter")
    redrive.add_argument("--dry-run", action="store_true", help="say what would happen")
    redrive.add_argument("--force", action="store_true",
                         help="redrive even into the consumer version that failed")
    return p


def main(argv: list[str] | None = None, *, store: Store | None = None,
         clock: Callable[[], float] | None = None) -> int:
    """Run one dlq command; return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv and store is None:
        demo()
        return 0
    args = parser().parse_args(argv)
    now = (clock or datetime.now(UTC).timestamp)()
    try:
        store = store or Store(args.db, create=False)
    except FileNotFoundError as error:
        print(f"dlq: {error}", file=sys.stderr)
        return 1
    if args.command == "show":
        row = store.db.execute("SELECT * FROM dead_letters WHERE id = ?", (args.id,)).fetchone()
        if row is None:
            print(f"dlq: no dead letter #{args.id}", file=sys.stderr)
            return 1
        doc: dict[str, Any] = dict(row) | {"headers": json.loads(row["headers"]),
                                           "body": body_text(row["body"])}
        doc |= {"dead_at": iso(row["dead_at"]),
                "redriven_at": row["redriven_at"] and iso(row["redriven_at"])}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    if args.command == "redrive" and not (args.ids or args.consumer or args.reason
                                          or args.source or args.error or args.all):
        print("dlq: name letter ids or a filter (or pass --all to redrive every letter)",
              file=sys.stderr)
        return 1
    letters = store.select(args)
    if not letters:
        print("dlq: no dead letters match", file=sys.stderr)
        return 1
    if args.command == "list":
        groups: dict[tuple[str, str, str, str], list[float]] = {}
        for r in letters:
            groups.setdefault((r["consumer"], r["consumer_version"], r["reason"], r["error"]),
                              []).append(r["dead_at"])
        print(f"{'CONSUMER':<12} {'VERSION':<8} {'REASON':<12} {'COUNT':>5} {'OLDEST':>7}  ERROR")
        for (consumer, version, reason, error), times in groups.items():
            print(f"{consumer:<12} {version:<8} {reason:<12} {len(times):>5} "
                  f"{age(now - min(times)):>7}  {error}")
    elif args.command == "filter":
        for r in letters:
            message_id = json.loads(r["headers"]).get("message_id", "-")
            print(f"#{r['id']:<3} {iso(r['dead_at'])} {r['consumer']}@{r['consumer_version']} "
                  f"{r['reason']} attempts={r['attempts']} {message_id} {r['error']}")
    else:
        refusals = store.redrive(letters, force=args.force, now=now, dry_run=args.dry_run)
        for refusal in refusals:
            print(f"dlq: refused {refusal}", file=sys.stderr)
        if refusals:
            print("dlq: nothing redriven (--force skips only the version check)", file=sys.stderr)
            return 3
        verb = "would redrive" if args.dry_run else "redrove"
        ids = ", ".join(f"#{r['id']}" for r in letters)
        print(f"{verb} {len(letters)} letters: {ids}")
    return 0


def demo() -> None:
    """A model outage leaves dead letters; the operator inspects, is refused, fixes, redrives."""
    store = Store(":memory:")
    start = datetime(2025, 3, 3, 21, 0, tzinfo=UTC).timestamp()
    store.register_consumer("mood-agent", "1.4.0")
    for n in (1, 2, 3):
        store.add(source="coaching.entries", consumer="mood-agent", consumer_version="1.4.0",
                  reason="max_attempts", error="TimeoutError: model endpoint did not answer",
                  attempts=3, headers={"message_id": f"m-{n}", "correlation_id": f"req-{n}"},
                  body=json.dumps({"entry": n}).encode(), dead_at=start + 60 * n)
    store.add(source="coaching.entries", consumer="mood-agent", consumer_version="1.4.0",
              reason="poison", error="PermanentError: body is not JSON", attempts=1,
              headers={"message_id": "m-4"}, body=b"\xff\xfe not json", dead_at=start + 300)
    later = lambda: start + 7200
    with contextlib.redirect_stderr(sys.stdout):
        for command in ["list", "filter --reason max_attempts", "show 4",
                        "redrive --reason max_attempts", None,
                        "redrive --reason max_attempts", "redrive 1", "list"]:
            if command is None:
                print("# mood-agent 1.4.1 is deployed and registers itself")
                store.register_consumer("mood-agent", "1.4.1")
                continue
            print(f"$ dlq {command}")
            code = main(shlex.split(command), store=store, clock=later)
            print(f"(exit {code})\n" if code else "", end="")
    queued = store.db.execute("SELECT source, headers FROM queue").fetchall()
    print(f"back on the queue: {[(q['source'], json.loads(q['headers'])['message_id']) for q in queued]}")


if __name__ == "__main__":
    sys.exit(main())
