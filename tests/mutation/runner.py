"""Mutation testing of ``snippets/`` with mutmut 3, one module at a time, incrementally.

For each module the runner finds the tests that exercise it, copies the project into a
scratch directory (so nothing mutmut writes lands in the working tree, and files being
edited meanwhile cannot disturb the run), runs mutmut there against only those tests,
and writes ``docs/data/bench/mutation/<chapter>/<module>.json``. A module whose inputs
(its source, its test files, the tool and the runner's settings) hash to the value stored
in its last result is not run again. Equivalent mutants come from ``equivalent.toml`` and
are applied at every run, so reviewing that file needs no new mutation run.

Every mutant runs in a fresh pytest session, so a session-scoped engine fixture would boot
its server once per mutant (PostgreSQL about 1 s, RabbitMQ 6-10 s). The runner starts
PostgreSQL and RabbitMQ once per run instead, the first time a module's tests may need
them, and names them to the fixtures through ``EDD_SHARED_ENGINES`` (see
``tests/engines.py``); it stops them when the run ends, on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import engines
from tests.bench.support import machine

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "snippets"
TESTS = ROOT / "tests"
HERE = Path(__file__).resolve().parent
DATA = ROOT / "docs" / "data" / "bench" / "mutation"
GUARANTEES = HERE / "guarantees.toml"
EQUIVALENTS = HERE / "equivalent.toml"

# What the project copy needs for the tests to run as they do in the working tree.
COPIED = ("snippets", "sitebuild", "tests", "docs", "pyproject.toml", "mkdocs.yml", "README.md")
# What mutmut copies into its own mutants/ folder besides the mutated sources (snippets/)
# and tests/: the tests run there.
ALSO_COPY = ("sitebuild", "docs", "mkdocs.yml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants", ".pytest_cache",
                                 ".hypothesis", "mutation")
# Test directories that never decide a module's mutants: the site sweeps need a built site
# and minutes each; this package is the runner itself.
NOT_TESTS = ("site", "mutation")
# Pytest as the mutants see it: no coverage (its 95 % floor applies to the whole suite),
# no cache written, and the project's 300 s per-test timeout as the last safety net behind
# mutmut's own per-mutant timeout (15 x the tests' measured time + 1 s).
PYTEST_ARGS = ["--no-cov", "-p", "no:cacheprovider", "-q", "-x"]
TIMEOUT_MULTIPLIER = 15.0
TIMEOUT_CONSTANT = 1.0
# Bump when a change to the runner should invalidate every stored result.
RUNNER_VERSION = 2

KILLED = {"killed", "segfault", "caught by type check"}
TIMED_OUT = {"timeout"}
SURVIVED = {"survived", "no tests", "suspicious", "skipped"}
UNFINISHED = {"not checked", "check was interrupted by user"}


# The fixtures that make a test use a shareable engine (see tests/engines.py); a module
# whose test files, or the conftest.py files of their directories, name one gets it.
ENGINE_FIXTURES = {
    "postgres": re.compile(r"\b(?:postgres_server|postgres_db|fresh_engine_env)\b"),
    "rabbitmq": re.compile(r"\b(?:rabbitmq_server|fresh_engine_env)\b"),
}


class MutationError(Exception):
    """A problem that stops the run: bad configuration, or a mutmut run that failed."""


@dataclass(frozen=True)
class Equivalent:
    """One reviewed entry of ``equivalent.toml``."""

    module: str
    id: str
    reason: str


def all_modules() -> list[str]:
    """Every example module as ``chapter/module``, sorted."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in SNIPPETS.glob("*/*.py")
                  if p.stem != "__init__")


def load_guarantees(path: Path | None = None) -> tuple[set[str], int, int]:
    """Return the guarantee modules, their target and the floor for all of ``snippets/``.

    Raises:
        MutationError: a listed module does not exist, or is listed twice.
    """
    path = path or GUARANTEES
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    modules = data["modules"]
    known = set(all_modules())
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise MutationError(f"{path.name}: no such module in snippets/: {', '.join(unknown)}")
    twice = sorted({m for m in modules if modules.count(m) > 1})
    if twice:
        raise MutationError(f"{path.name}: listed twice: {', '.join(twice)}")
    return set(modules), int(data["target"]), int(data["floor"])


def load_equivalents(path: Path | None = None) -> list[Equivalent]:
    """Read the reviewed equivalent mutants, and the rules (``[[rule]]``) switched on;
    a rule comes back as an :class:`Equivalent` whose module is ``*`` and id the rule's.

    Raises:
        MutationError: an entry lacks a field, has a multi-line reason, names an unknown
            module or rule, or repeats another entry's module and id.
    """
    path = path or EQUIVALENTS
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = document.get("equivalent", [])
    known = set(all_modules())
    found: list[Equivalent] = []
    for rule in document.get("rule", []):
        if rule.get("id") not in RULES:
            raise MutationError(f"{path.name}: no rule {rule.get('id')!r}; known: "
                                f"{', '.join(sorted(RULES))}")
        if not str(rule.get("reason", "")).strip() or "\n" in rule["reason"]:
            raise MutationError(f"{path.name}: rule {rule['id']} needs a one-line reason")
        found.append(Equivalent("*", rule["id"], rule["reason"].strip()))
    for number, entry in enumerate(entries, 1):
        missing = [k for k in ("module", "id", "reason") if not str(entry.get(k, "")).strip()]
        if missing:
            raise MutationError(f"{path.name}: entry {number} lacks {', '.join(missing)}")
        if "\n" in entry["reason"]:
            raise MutationError(f"{path.name}: entry {number}: the reason must be one line")
        if entry["module"] not in known:
            raise MutationError(f"{path.name}: entry {number}: no module {entry['module']}")
        item = Equivalent(entry["module"], entry["id"], entry["reason"].strip())
        if any((e.module, e.id) == (item.module, item.id) for e in found):
            raise MutationError(f"{path.name}: entry {number} repeats {item.module} {item.id}")
        found.append(item)
    return found


STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# SQL as the modules write it: keywords in capitals (a message in lower case is not SQL).
# Transaction control and the clauses that continue a statement split over several string
# literals ("... FROM t " "ORDER BY id LIMIT ?", "... (id INTEGER, " "body TEXT NOT NULL)")
# count too.
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|ALTER TABLE|DROP|VALUES|"
                 r"WHERE|ON CONFLICT|RETURNING|LISTEN|NOTIFY|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|"
                 r"FROM|ORDER BY|GROUP BY|LIMIT|FOR UPDATE|SKIP LOCKED|AND|NOT NULL|"
                 r"PRIMARY KEY|DEFAULT|INTEGER|TEXT)\b")


def sql_case(change: dict[str, object]) -> bool:
    """Rule ``sql-case``: the mutant only changes the letter case of one string of SQL.

    SQL keywords, and table and column names written without quotes, ignore case in
    SQLite and PostgreSQL, so ``"INSERT INTO inbox"`` and ``"insert into INBOX"`` are the
    same statement. The rule holds only when every changed character lies inside one
    string literal that holds SQL and no quoted literal or identifier, whose case does
    matter (``status = 'done'``); a changed dict key on the same line does not qualify.
    """
    removed, _, added = str(change["change"]).partition("  ->  ")
    if removed == added or removed.lower() != added.lower() or len(removed) != len(added):
        return False
    differ = [i for i, (a, b) in enumerate(zip(removed, added, strict=True)) if a != b]
    for literal in STRING.finditer(removed):
        if literal.start() < differ[0] and differ[-1] < literal.end() - 1:
            body = literal.group()[1:-1]
            return bool(SQL.search(body)) and not any(q in body for q in "'\"\\")
    return False


# Rules that mark a whole class of survivors as equivalent. A rule applies only once
# equivalent.toml declares it (with its reason), so turning one on is reviewed there.
RULES = {"sql-case": sql_case}


def tests_for(module: str) -> list[Path]:
    """The test files that exercise ``chapter/module``: its mirrored test file, and any other
    test file that imports it or names its file (site sweeps excluded)."""
    chapter, name = module.split("/")
    uses = re.compile(
        rf"\bsnippets\.{chapter}\.{name}\b"
        rf"|\bfrom\s+snippets\.{chapter}\s+import\s+(?:\([^)]*\b{name}\b[^)]*\)|[^\n]*\b{name}\b)"
        rf"|\b{chapter}/{name}\.py\b")
    found = set()
    mirrored = TESTS / chapter / f"test_{name}.py"
    if mirrored.is_file():
        found.add(mirrored)
    for path in TESTS.rglob("test_*.py"):
        if path.relative_to(TESTS).parts[0] in NOT_TESTS:
            continue
        if uses.search(path.read_text(encoding="utf-8")):
            found.add(path)
    return sorted(found)


def engines_for(tests: Iterable[Path]) -> set[str]:
    """The shareable engines that ``tests`` may ask for: a fixture name in a test file or
    in a ``conftest.py`` between it and ``tests/`` (``tests/conftest.py`` itself only
    re-exports every fixture, so it does not count)."""
    texts = []
    for path in tests:
        texts.append(path.read_text(encoding="utf-8"))
        for directory in path.parents:
            if directory == TESTS or TESTS not in directory.parents:
                break
            if (directory / "conftest.py").is_file():
                texts.append((directory / "conftest.py").read_text(encoding="utf-8"))
    return {name for name, uses in ENGINE_FIXTURES.items()
            if any(uses.search(text) for text in texts)}


class SharedEngines:
    """PostgreSQL and RabbitMQ started once for a whole run, shared by every mutant's
    pytest session through ``EDD_SHARED_ENGINES`` (a JSON file in ``directory``).

    Each engine starts the first time :meth:`need` asks for it; :meth:`stop` stops all of
    them and removes their data. The processes are this process's children: pass
    :meth:`pids` to :func:`reap_orphans` so that they are not taken for a mutant's leftovers.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "engines.json"
        self.entries: dict[str, dict[str, object]] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.engines: list[engines.Engine] = []
        self.dirs: list[Path] = []

    def need(self, names: Iterable[str]) -> dict[str, str]:
        """Start each engine of ``names`` not yet running; return the environment that
        names the running ones to the fixtures (empty while none runs)."""
        self.check()
        for name in sorted(set(names) - set(self.entries)):
            print(f"   starting a shared {name} for the rest of the run...", flush=True)
            try:
                self.entries[name] = getattr(self, f"_start_{name}")()
            except (RuntimeError, OSError, subprocess.SubprocessError,
                    pytest.skip.Exception, pytest.fail.Exception) as error:
                raise MutationError(f"could not start a shared {name}: {error}") from None
            self.path.write_text(json.dumps(self.entries, indent=2), encoding="utf-8")
        return {engines.SHARED_ENGINES: str(self.path)} if self.entries else {}

    def check(self) -> None:
        """Raise :class:`MutationError` if a shared engine has exited: every mutant after
        that would fail for want of its server, and count as killed."""
        dead = [f"{p.args[0] if isinstance(p.args, list) else p.args} (exit {p.returncode})"
                for p in self.processes if p.poll() is not None]
        if dead:
            raise MutationError(f"a shared engine exited during the run: {', '.join(dead)}; "
                                "the results of the module that ran meanwhile are not kept")

    def pids(self) -> set[int]:
        """The process ids of the shared engines and their helpers."""
        return {p.pid for p in self.processes if p.poll() is None}

    def _start_postgres(self) -> dict[str, object]:
        engine = engines._postgres(self.dirs)
        self.engines.append(engine)
        engine.start()
        self.processes.append(engine.process)
        return {"url": engine.url, "port": engine.port}

    def _start_rabbitmq(self) -> dict[str, object]:
        management = engines.free_port()
        engine, epmd = engines._rabbitmq(self.dirs, management_port=management)
        self.processes.append(epmd)
        self.engines.append(engine)
        engine.start(timeout=180)
        self.processes.append(engine.process)
        entry = {"url": engine.url, "port": engine.port, "management_port": management,
                 "node": engine.env["RABBITMQ_NODENAME"], "env": engine.env}
        deadline = time.monotonic() + 120
        while True:  # the management listener comes up after AMQP
            try:
                engines._management(entry, "GET", "overview")
                return entry
            except OSError:
                if time.monotonic() > deadline:
                    raise MutationError("the shared RabbitMQ's management API did not answer "
                                        f"within 120 s; log: {engine.log_path}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop every engine (then its helpers) and remove the data and the JSON file."""
        for engine in reversed(self.engines):
            engine.stop()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.path.unlink(missing_ok=True)
        self.entries.clear()


def tool_version() -> str:
    """The installed mutmut, or a clear error naming the fix."""
    try:
        return f"mutmut {importlib.metadata.version('mutmut')}"
    except importlib.metadata.PackageNotFoundError:
        raise MutationError("mutmut is not installed in this interpreter: run `make mutate`, "
                            "which installs requirements.txt") from None


def inputs_hash(module: str, tests: Iterable[Path], tool: str) -> str:
    """Hash everything a module's result depends on: source, tests, tool and settings."""
    digest = hashlib.sha256()
    settings = [tool, RUNNER_VERSION, PYTEST_ARGS, TIMEOUT_MULTIPLIER, TIMEOUT_CONSTANT]
    digest.update(json.dumps(settings).encode())
    for path in [SNIPPETS / f"{module}.py", *tests]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def function_name(mutant: str) -> str:
    """``Class.method`` or ``function`` from a mutmut mutant name."""
    mangled = mutant.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("x\u01c1"):
        return ".".join(part for part in mangled[2:].split("\u01c1") if part)
    return mangled.removeprefix("x_")


def changed_lines(diff: str) -> tuple[list[str], list[str], int]:
    """The removed and added lines of a function-relative diff, stripped, and the position
    (1-based, within the function's source) of the first removed line."""
    removed: list[str] = []
    added: list[str] = []
    first = 0
    old = 0
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            old = int(re.match(r"@@ -(\d+)", line)[1])
        elif line.startswith("-"):
            first = first or old
            removed.append(line[1:].strip())
            old += 1
        elif line.startswith("+"):
            added.append(line[1:].strip())
        else:
            old += 1
    return removed, added, first


def source_line(source: str, function: str, removed: list[str], position: int) -> int:
    """The line of the module where a mutant's first removed line is."""
    tree = ast.parse(source)
    node: ast.AST | None = None
    scope: list[ast.stmt] = tree.body
    for part in function.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and n.name == part), None)
        if node is None:
            return 0
        scope = node.body
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    guess = start + position - 1
    lines = source.splitlines()
    if not removed or (0 < guess <= len(lines) and lines[guess - 1].strip() == removed[0]):
        return guess
    for number in range(start, node.end_lineno + 1):
        if lines[number - 1].strip() == removed[0]:
            return number
    return guess


def survivor(module_source: str, mutant: str, status: str, diff: str) -> dict[str, object]:
    """Describe a mutant that was not killed, with an id stable across runs."""
    function = function_name(mutant)
    removed, added, position = changed_lines(diff)
    text = f"{function}|{' / '.join(removed)}|{' / '.join(added)}"
    return {
        "id": hashlib.sha256(text.encode()).hexdigest()[:10],
        "line": source_line(module_source, function, removed, position),
        "function": function,
        "status": status,
        "change": f"{' / '.join(removed)}  ->  {' / '.join(added)}",
        "mutant": mutant.rsplit(".", 1)[1],
    }


def unique_ids(survivors: list[dict[str, object]]) -> None:
    """Suffix ``#2``, ``#3`` to ids that two identical changes in one function share."""
    seen: dict[str, int] = {}
    for item in sorted(survivors, key=lambda s: (s["line"], s["mutant"])):
        seen[item["id"]] = seen.get(item["id"], 0) + 1
        if seen[item["id"]] > 1:
            item["id"] = f"{item['id']}#{seen[item['id']]}"


def tally(statuses: dict[str, int], survivors: list[dict[str, object]],
          equivalents: list[Equivalent], module: str) -> dict[str, object]:
    """Count the verdicts; a listed equivalent survivor leaves the score's denominator."""
    reasons = {e.id: e.reason for e in equivalents if e.module == module}
    rules = [(RULES[e.id], f"{e.id}: {e.reason}") for e in equivalents if e.module == "*"]
    for item in survivors:
        item["equivalent"] = reasons.get(item["id"]) or next(
            (reason for applies, reason in rules if "change" in item and applies(item)), None)
    mutants = sum(statuses.values())
    killed = sum(n for s, n in statuses.items() if s in KILLED)
    timed_out = sum(n for s, n in statuses.items() if s in TIMED_OUT)
    equivalent = sum(1 for s in survivors if s["equivalent"])
    survived = mutants - killed - timed_out - equivalent
    scored = mutants - equivalent
    score = round(100 * (killed + timed_out) / scored, 1) if scored else 100.0
    return {"mutants": mutants, "killed": killed, "survived": survived,
            "timed_out": timed_out, "equivalent": equivalent, "score": score}


def copy_project(into: Path) -> None:
    """Copy what the tests need into ``into`` (never the virtualenv or the built site)."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, into / name)


# mutmut's trampolines read [tool.mutmut] from the working directory while it collects
# which tests call which function. A test that runs a module as a script from the module's
# own directory (as a reader would) inherits that phase, and without this file the script
# fails with "Could not figure out where the code to mutate is".
SCRIPT_CONFIG = ("# Written by tests/mutation/runner.py in the scratch copy only: lets a module run as\n"
                 "# a script from this directory while mutmut collects its statistics.\n"
                 '[tool.mutmut]\nsource_paths = ["."]\n')


def let_scripts_run(project: Path) -> None:
    """Give each chapter of ``project/snippets`` the ``pyproject.toml`` that a module run
    as a script from there needs under mutmut (see ``SCRIPT_CONFIG``)."""
    for chapter in (project / "snippets").iterdir():
        if chapter.is_dir() and not (chapter / "pyproject.toml").exists():
            (chapter / "pyproject.toml").write_text(SCRIPT_CONFIG, encoding="utf-8")


def without_main(source: str) -> str:
    """Mark the module's ``main()`` not to be mutated (in the scratch copy only).

    ``main()`` is the page's demonstration: its output is pinned by the site tests (the
    page shows what it prints, recorded outputs are compared against real engines), not by
    the module's own tests, so its mutants would measure the site contract, not the tests.
    Only a ``main()`` without parameters is a demonstration; a ``main(argv)`` is a
    command-line tool that its tests call, and is mutated like the rest. The
    ``# pragma: no mutate start`` / ``end`` lines go before ``main()`` and before the
    next top-level statement (or at the end of the module).
    """
    tree = ast.parse(source)
    body = tree.body
    where = [i for i, n in enumerate(body) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.name == "main" and not ast.unparse(n.args)]
    if not where:
        return source

    def first_line(node: ast.stmt) -> int:
        decorators = getattr(node, "decorator_list", [])
        return min([node.lineno, *(d.lineno for d in decorators)])

    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = first_line(body[where[0]])
    end = first_line(body[where[0] + 1]) if where[0] + 1 < len(body) else len(lines) + 1
    return "".join([*lines[:start - 1], "# pragma: no mutate start\n", *lines[start - 1:end - 1],
                    "# pragma: no mutate end\n", *lines[end - 1:]])


def mutmut_settings(module: str, tests: list[Path]) -> str:
    """The ``[tool.mutmut]`` table that limits mutmut to one module and its tests."""
    def toml_list(items: Iterable[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["snippets"]\n'
        f"only_mutate = {toml_list([f'snippets/{module}.py'])}\n"
        f"also_copy = {toml_list(ALSO_COPY)}\n"
        f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n"
        "pytest_add_cli_args_test_selection = "
        f"{toml_list(str(t.relative_to(ROOT)) for t in tests)}\n"
        f"timeout_multiplier = {TIMEOUT_MULTIPLIER}\n"
        f"timeout_constant = {TIMEOUT_CONSTANT}\n"
        "use_git_change_detection = false\n"
    )


def adopt_orphans() -> bool:
    """Make this process the Linux "child subreaper" of everything it starts.

    The engine fixtures start servers in their own sessions; when mutmut stops a mutant
    that had started one (timeout, crash), the server is orphaned and would outlive the
    run. As subreaper, this process becomes its parent instead of init, so that
    :func:`reap_orphans` can find it. Returns whether that is in place (Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


def reap_orphans(keep: Iterable[int] = ()) -> list[int]:
    """Kill and reap every process left as this process's child, except ``keep`` (the
    shared engines); return the ids of those that were still running (processes that had
    already exited, such as the short-lived helpers of an engine's start script, are
    reaped without being reported)."""
    mine = os.getpid()
    keep = set(keep)
    found, running = [], []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == mine and int(stat.parent.name) not in keep:
            found.append(int(stat.parent.name))
            if fields[0] != "Z":
                running.append(int(stat.parent.name))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return sorted(running)


def mutate(module: str, tests: list[Path], jobs: int, keep: bool,
           shared: SharedEngines | None = None) -> tuple[dict, float]:
    """Run mutmut on one module in a scratch copy; return its verdicts and the seconds.
    With ``shared``, the engines its tests need are shared by all its mutants."""
    work = Path(tempfile.mkdtemp(prefix=f"edd-mutation-{module.replace('/', '-')}-"))
    try:
        copy_project(work)
        let_scripts_run(work)
        copied = work / "snippets" / f"{module}.py"
        copied.write_text(without_main(copied.read_text(encoding="utf-8")), encoding="utf-8")
        with open(work / "pyproject.toml", "a", encoding="utf-8") as pyproject:
            pyproject.write(mutmut_settings(module, tests))
        env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "100"}
        env.pop("PYTEST_ADDOPTS", None)
        env.pop(engines.SHARED_ENGINES, None)
        if shared is not None:
            env.update(shared.need(engines_for(tests)))
        start = time.monotonic()
        with open(work / "mutmut.log", "w") as log:
            done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                                   str(jobs)], check=False, cwd=work, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - start
        leaked = reap_orphans(keep=shared.pids() if shared else ())
        if shared is not None:
            shared.check()
        if leaked:
            print(f"   {module}: stopped {len(leaked)} process(es) that mutants left running",
                  flush=True)
        if done.returncode != 0:
            tail = (work / "mutmut.log").read_text(errors="replace")[-2000:]
            keep = True
            raise MutationError(f"mutmut failed on {module} (exit {done.returncode}); "
                                f"work directory kept: {work}\n{tail}")
        dumped = subprocess.run([sys.executable, str(HERE / "_dump.py"),
                                 f"snippets/{module}.py"], check=False, cwd=work, env=env,
                                capture_output=True, text=True)
        if dumped.returncode != 0:
            keep = True
            raise MutationError(f"reading mutmut's results for {module} failed; work "
                                f"directory kept: {work}\n{dumped.stderr[-2000:]}")
        return json.loads(dumped.stdout), seconds
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def result_path(module: str) -> Path:
    """Where a module's result lives."""
    return DATA / f"{module}.json"


def run_module(module: str, *, jobs: int, force: bool, keep: bool, guarantees: set[str],
               target: int, floor: int, equivalents: list[Equivalent],
               shared: SharedEngines | None = None) -> dict | None:
    """Mutate one module unless its stored result is current; return the result, or
    ``None`` if there is none (a module with no test file is reported, not run)."""
    tests = tests_for(module)
    path = result_path(module)
    previous = json.loads(path.read_text()) if path.is_file() else None
    if not tests:
        print(f"   {module}: no test file exercises it; not run", flush=True)
        return previous
    tool = tool_version()
    digest = inputs_hash(module, tests, tool)
    if previous and previous.get("inputs_sha256") == digest and not force:
        print(f"   {module}: unchanged since {previous['date']}; not run again", flush=True)
        record = previous
    else:
        print(f"   {module}: mutating, against {len(tests)} test file(s)...", flush=True)
        verdicts, seconds = mutate(module, tests, jobs, keep, shared)
        unfinished = sorted({v["status"] for v in verdicts.values()} & UNFINISHED)
        if unfinished:
            raise MutationError(f"{module}: mutmut left mutants {', '.join(unfinished)}")
        source = (SNIPPETS / f"{module}.py").read_text(encoding="utf-8")
        statuses: dict[str, int] = {}
        survivors, timeouts = [], []
        for name, verdict in sorted(verdicts.items()):
            statuses[verdict["status"]] = statuses.get(verdict["status"], 0) + 1
            if verdict["status"] in TIMED_OUT:
                timeouts.append(survivor(source, name, verdict["status"], verdict["diff"]))
            elif verdict["status"] not in KILLED:
                survivors.append(survivor(source, name, verdict["status"], verdict["diff"]))
        unique_ids(survivors)
        record = {
            "module": module,
            "tests": [str(t.relative_to(ROOT)) for t in tests],
            "tool": tool,
            "statuses": dict(sorted(statuses.items())),
            "seconds": round(seconds, 1),
            "jobs": jobs,
            "date": dt.date.today().isoformat(),
            "machine": machine(),
            "python": platform.python_version(),
            "command": "make mutate",
            "inputs_sha256": digest,
            "survivors": sorted(survivors, key=lambda s: (s["line"], s["id"])),
            # Counted as killed; listed so that a timeout caused by a loaded machine,
            # not by the mutant, can be spotted and the module run again.
            "timeouts": sorted(timeouts, key=lambda s: (s["line"], s["id"])),
        }
    record["guarantee"] = module in guarantees
    record["target"] = target if module in guarantees else floor
    record.update(tally(record["statuses"], record["survivors"], equivalents, module))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def duration(seconds: float) -> str:
    """A run's wall-clock time as the About table shows it: seconds, or whole minutes."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def percent(killed: int, scored: int) -> str:
    """A score as the About table shows it."""
    return f"{100 * killed / scored:.1f} %" if scored else "n/a"


def summary(records: list[dict], target: int, floor: int) -> dict[str, object]:
    """The About page's table (the shape ``<!-- bench: ... -->`` renders), with totals."""
    rows: list[list[object]] = []
    for r in sorted(records, key=lambda r: (not r["guarantee"], r["module"])):
        mark = "" if r["score"] >= r["target"] else " (below target)"
        rows.append([f"`{r['module']}`", "yes" if r["guarantee"] else "", r["mutants"],
                     r["killed"], r["survived"], r["timed_out"], r["equivalent"],
                     f"{r['score']:.1f} %{mark}", duration(r["seconds"]), r["date"]])
    for label, chosen in (("All guarantee modules", [r for r in records if r["guarantee"]]),
                          ("All measured modules", records)):
        total = {k: sum(r[k] for r in chosen)
                 for k in ("mutants", "killed", "survived", "timed_out", "equivalent")}
        scored = total["mutants"] - total["equivalent"]
        rows.append([f"**{label}** ({len(chosen)})", "", total["mutants"], total["killed"],
                     total["survived"], total["timed_out"], total["equivalent"],
                     percent(total["killed"] + total["timed_out"], scored),
                     duration(sum(r["seconds"] for r in chosen)), ""])
    machines = sorted({r["machine"] for r in records})
    return {
        "columns": ["Module", "Guarantee", "Mutants", "Killed", "Survived", "Timed out",
                    "Equivalent", "Score", "Time", "Run on"],
        "rows": rows,
        "machine": machines[0] if len(machines) == 1 else "; ".join(machines),
        "date": max((r["date"] for r in records), default=dt.date.today().isoformat()),
        "python": platform.python_version(),
        "command": "make mutate",
        "note": (f"{len(records)} of {len(all_modules())} modules measured. Score: killed or "
                 "timed out, over mutants not listed as equivalent. Targets: "
                 f"{target} % for guarantee modules, {floor} % over all of snippets/. Time: "
                 "wall clock of the module's last run, with as many mutants at once as "
                 "its data file's jobs (1 unless --jobs was given)."),
    }


def check(records: list[dict], equivalents: list[Equivalent], floor: int) -> list[str]:
    """The problems ``--check`` fails on: missed targets and stale equivalent entries."""
    problems = [f"{r['module']}: {r['score']:.1f} % killed, target {r['target']} %"
                for r in records if r["guarantee"] and r["score"] < r["target"]]
    total = sum(r["mutants"] - r["equivalent"] for r in records)
    killed = sum(r["killed"] + r["timed_out"] for r in records)
    if total and 100 * killed / total < floor:
        problems.append(f"all measured modules: {100 * killed / total:.1f} % killed, "
                        f"floor {floor} %")
    by_module = {r["module"]: {s["id"] for s in r["survivors"]} for r in records}
    problems += [f"equivalent.toml: {e.module} {e.id} matches no surviving mutant (stale)"
                 for e in equivalents if e.module in by_module and e.id not in by_module[e.module]]
    return problems


@contextlib.contextmanager
def shared_engines() -> Iterator[SharedEngines]:
    """Shared engines for one run, stopped when it ends however it ends: normally, on an
    error, on Ctrl-C, or on SIGTERM (turned into an exit so that this cleanup runs)."""
    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    shared = SharedEngines(Path(tempfile.mkdtemp(prefix="edd-mutation-engines-")))
    try:
        yield shared
    finally:
        # A run cut short leaves mutmut's sessions, and the servers they started, as this
        # process's orphans: stop them (each round frees the next generation) before the
        # shared engines.
        for _ in range(5):
            if not reap_orphans(keep=shared.pids()):
                break
        shared.stop()
        shutil.rmtree(shared.path.parent, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def report(record: dict) -> None:
    """Print a module's score and its survivors that are not listed as equivalent."""
    left = [s for s in record["survivors"] if not s["equivalent"]]
    print(f"   {record['module']}: {record['mutants']} mutants, {record['score']:.1f} % "
          f"killed (target {record['target']} %), {len(left)} survived, "
          f"{record['seconds']:.0f} s", flush=True)
    for s in left:
        print(f"      line {s['line']} [{s['id']}] {s['function']}: {s['change']}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m tests.mutation``; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation",
        description="Mutation testing of snippets/ with mutmut, module by module, "
                    "skipping modules whose source and tests are unchanged.")
    parser.add_argument("selectors", nargs="*", metavar="SELECTOR",
                        help="run only modules whose chapter/module contains one of these")
    parser.add_argument("--guarantees", action="store_true",
                        help="only the modules listed in guarantees.toml")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--force", action="store_true", help="run even unchanged modules")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument("--list", action="store_true",
                        help="print each selected module's test files and exit")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: re-apply equivalent.toml and guarantees.toml to the "
                             "stored results and rewrite the summary")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a target is missed or an equivalent entry is stale")
    args = parser.parse_args(argv)
    try:
        guarantees, target, floor = load_guarantees()
        equivalents = load_equivalents()
        chosen = [m for m in all_modules()
                  if (not args.selectors or any(s in m for s in args.selectors))
                  and (not args.guarantees or m in guarantees)]
        if not chosen:
            raise MutationError(f"no module matches {' '.join(args.selectors)}")
        if args.list:
            for module in chosen:
                tests = ", ".join(str(t.relative_to(ROOT)) for t in tests_for(module))
                print(f"{module}{' [guarantee]' if module in guarantees else ''}: "
                      f"{tests or 'NO TESTS'}")
            return 0
        if not args.report:
            adopt_orphans()
            with shared_engines() as shared:
                for module in chosen:
                    record = run_module(module, jobs=args.jobs, force=args.force,
                                        keep=args.keep, guarantees=guarantees, target=target,
                                        floor=floor, equivalents=equivalents, shared=shared)
                    if record:
                        report(record)
        records = []
        for path in sorted(DATA.glob("*/*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["module"] in set(all_modules()):
                record["guarantee"] = record["module"] in guarantees
                record["target"] = target if record["guarantee"] else floor
                record.update(tally(record["statuses"], record["survivors"], equivalents,
                                    record["module"]))
                path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
                records.append(record)
        (DATA / "summary.json").write_text(
            json.dumps(summary(records, target, floor), indent=2) + "\n",
            encoding="utf-8")
        problems = check(records, equivalents, floor)
        for problem in problems:
            print(f"!! {problem}")
        return 1 if problems and args.check else 0
    except MutationError as error:
        print(f"mutation: {error}", file=sys.stderr)
        return 2
