"""Chromium's own coverage of the site's scripts, measured while the browser tests run.

Every page a browser test opens gets V8's precise block coverage through the DevTools
protocol (``Profiler.startPreciseCoverage``); the coverage is taken before the page
navigates away with ``goto``, ``reload``, ``go_back`` or ``go_forward``, closes, or its
context or browser closes, so no such document's coverage is lost. A navigation the
page starts itself (a test clicking a link) cannot be waited for: the document it
leaves is counted as lost, not measured.

Each test process appends what it took to files in the run's common temporary
directory; the process that runs the session (pytest-xdist's controller, or pytest
itself without workers) merges them at the end, reports covered lines per script,
writes ``test-artifacts/js-coverage.json`` and fails a full run below ``THRESHOLD``.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "docs" / "assets" / "javascripts"
SITE_TESTS = ROOT / "tests" / "site"
REPORT_NAME = "test-artifacts/js-coverage.json"
REPORT = ROOT / REPORT_NAME

SCRIPTS = ("site.js", "run.js", "checklist.js", "run-worker.js")
CHECKED = ("site.js", "run.js", "checklist.js")  # run-worker.js runs in a worker: not measured
THRESHOLD = 80.0
PREFIX = "/assets/javascripts/"

DESELECTED = pytest.StashKey[list]()
RESULT = pytest.StashKey[dict]()

Range = tuple[int, int]


# --- What V8 reports ------------------------------------------------------------

def script_name(url: str) -> str | None:
    """The site script a coverage entry is for, from its URL, or None."""
    path = url.split("#")[0].split("?")[0]
    for name in SCRIPTS:
        if path.endswith(PREFIX + name):
            return name
    return None


def covered_ranges(functions: Iterable[dict[str, Any]]) -> list[Range]:
    """The offsets [start, end) one document ran of one script, from V8's block coverage.

    V8 reports ranges that nest (a function inside its script, a block inside its
    function); the count of an offset is that of the innermost range containing it,
    so a block that never ran is a hole with count 0 in a function that did. (V8's
    ranges never overlap without nesting; ranges that did would lose no covered offset
    here but could cover too few.)"""
    ranges = sorted(((r["startOffset"], r["endOffset"], r["count"])
                     for function in functions for r in function["ranges"]),
                    key=lambda r: (r[0], -r[1]))
    out: list[Range] = []

    def emit(start: int, end: int, count: int) -> None:
        if count > 0 and end > start:
            if out and out[-1][1] >= start:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))

    stack: list[tuple[int, int]] = []  # (end, count) of the ranges open at pos
    pos = 0
    for start, end, count in ranges:
        while stack and stack[-1][0] <= start:
            top_end, top_count = stack.pop()
            emit(pos, top_end, top_count)
            pos = max(pos, top_end)
        if stack:
            emit(pos, start, stack[-1][1])
        pos = start
        stack.append((end, count))
    while stack:
        top_end, top_count = stack.pop()
        emit(pos, top_end, top_count)
        pos = max(pos, top_end)
    return out


def union(documents: Iterable[Sequence[Range]]) -> list[Range]:
    """The offsets any of the documents ran: an offset is covered if one document ran it."""
    out: list[Range] = []
    for start, end in sorted(r for ranges in documents for r in ranges):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def script_end(functions: Iterable[dict[str, Any]]) -> int:
    """Where the last range of a document ends, in UTF-16 units. (A take after the first
    reports only the functions that ran since, so this is not the script's length.)"""
    return max((r["endOffset"] for f in functions for r in f["ranges"]), default=0)


def digest(text: str) -> str:
    """The fingerprint of a script's source, to tell its versions apart."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# --- Lines ------------------------------------------------------------------------

REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^")
REGEX_KEYWORDS = ("return", "typeof", "case", "do", "else", "in", "of", "new", "delete",
                  "void", "throw", "yield", "await")


def code_mask(source: str) -> list[bool]:
    """For each character of a JavaScript source: is it code (not whitespace, not in a
    comment)? Strings, template literals (with ``${...}``) and regular expression
    literals are code, so a ``//`` inside them starts no comment."""
    mask = [False] * len(source)
    templates: list[int] = []  # brace depth at which each open ${ } returns to its template
    depth = 0
    last = ""  # the last code character outside strings and comments
    word = ""  # the identifier that ends at it, if any
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
            continue
        nxt = source[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and source[i] != "\n":
                i += 1
            continue
        if c == "/" and nxt == "*":
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        start = i
        if c in "'\"":
            i += 1
            while i < n and source[i] != c and source[i] != "\n":
                i += 2 if source[i] == "\\" else 1
            i += 1
        elif c == "`" or (c == "}" and templates and templates[-1] == depth):
            if c == "}":
                templates.pop()
            i += 1
            while i < n and source[i] != "`":
                if source[i] == "\\":
                    i += 2
                elif source.startswith("${", i):
                    templates.append(depth)
                    i += 2
                    break
                else:
                    i += 1
            else:
                i += 1
        elif c == "/" and (last == "" or last in REGEX_AFTER or word in REGEX_KEYWORDS):
            i += 1
            in_class = False
            while i < n and source[i] != "\n" and (in_class or source[i] != "/"):
                if source[i] == "\\":
                    i += 1
                elif source[i] == "[":
                    in_class = True
                elif source[i] == "]":
                    in_class = False
                i += 1
            i += 1  # its flags are read as a word next: the same to this mask
        elif c.isalnum() or c in "_$":
            while i < n and (source[i].isalnum() or source[i] in "_$"):
                i += 1
        else:
            depth += {"{": 1, "}": -1}.get(c, 0)
            i += 1
        i = min(i, n)
        for k in range(start, i):
            mask[k] = not source[k].isspace()
        last = source[i - 1]
        word = source[start:i] if c.isalnum() or c in "_$" else ""
    return mask


def line_coverage(source: str, ranges: Sequence[Range]) -> tuple[list[int], list[int]]:
    """The executable lines of a script and those of them the ranges ran (1-based).

    A line is executable if it has a character of code (not whitespace, not comment),
    covered if one of those characters lies in a range. The ranges count UTF-16 units,
    as V8 does."""
    mask = code_mask(source)
    covered_at = bytearray(sum(2 if ord(c) > 0xFFFF else 1 for c in source) + 1)
    for start, end in ranges:
        covered_at[start:end] = b"\x01" * (min(end, len(covered_at)) - start)
    executable: list[int] = []
    covered: list[int] = []
    line, unit, has_code, ran = 1, 0, False, False
    for index, char in enumerate(source):
        if char == "\n":
            if has_code:
                executable.append(line)
                if ran:
                    covered.append(line)
            line, has_code, ran = line + 1, False, False
        elif mask[index]:
            has_code = True
            ran = ran or bool(covered_at[unit])
        unit += 2 if ord(char) > 0xFFFF else 1
    if has_code:
        executable.append(line)
        if ran:
            covered.append(line)
    return executable, covered


# --- Collecting in the browser ----------------------------------------------------------

class Recorder:
    """The coverage of every page of one browser, kept per script and document.

    Identical results (the same page's scripts run the same way) are kept once."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.sessions: dict[Any, Any] = {}  # page: its DevTools session
        self.untaken: set[Any] = set()  # pages whose loaded document is not taken yet
        self.loaded = 0  # documents loaded
        self.lost = 0  # documents left before their coverage was taken (a click)
        self.digests: dict[str, str | None] = {}  # script URL: digest of what it serves

    def start(self, page: Any) -> None:
        """Start precise coverage in a new page, before it loads anything."""
        session = page.context.new_cdp_session(page)
        session.send("Profiler.enable")
        session.send("Profiler.startPreciseCoverage", {"callCount": True, "detailed": True})
        self.sessions[page] = session
        page.on("load", lambda _: self._loaded(page))

    def _loaded(self, page: Any) -> None:
        self.loaded += 1
        if page in self.untaken:
            self.lost += 1
        self.untaken.add(page)

    def take(self, page: Any) -> None:
        """Take the coverage of the page's document so far (before it goes away)."""
        session = self.sessions.get(page)
        if session is None or page.is_closed():
            return
        self.untaken.discard(page)
        try:
            result = session.send("Profiler.takePreciseCoverage")
        except Exception:  # noqa: BLE001 - the page crashed or closed: nothing to take
            return
        for entry in result["result"]:
            name = script_name(entry["url"])
            if name:
                raw = {"script": name, "sha1": self.digest_of(entry["url"]),
                       "functions": entry["functions"]}
                text = json.dumps(raw, sort_keys=True, separators=(",", ":"))
                self.documents.setdefault(hashlib.sha1(text.encode()).hexdigest(), raw)

    def digest_of(self, url: str) -> str | None:
        """The digest of the script the site serves at a URL (read once), or None."""
        if url not in self.digests:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    self.digests[url] = digest(response.read().decode("utf-8"))
            except (OSError, ValueError):
                self.digests[url] = None
        return self.digests[url]

    def forget(self, page: Any) -> None:
        """The page closes: keep nothing of it."""
        self.sessions.pop(page, None)
        self.untaken.discard(page)

    def write(self, directory: Path, label: str) -> None:
        """Append this browser's results to the run's coverage directory."""
        directory.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(directory / f"coverage-{worker}.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps({"module": label, "loaded": self.loaded, "lost": self.lost,
                                  "documents": list(self.documents.values())}) + "\n")


def _wrap(obj: Any, name: str, before: Any) -> None:
    real = getattr(obj, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before()
        return real(*args, **kwargs)

    setattr(obj, name, wrapped)


def instrument(browser: Any, recorder: Recorder) -> Any:
    """Make every page of the browser record its coverage into the recorder."""
    real_new_context, real_close = browser.new_context, browser.close

    def instrument_page(page: Any) -> Any:
        recorder.start(page)
        for name in ("goto", "reload", "go_back", "go_forward"):
            _wrap(page, name, lambda: recorder.take(page))
        real_page_close = page.close

        def close(*args: Any, **kwargs: Any) -> Any:
            recorder.take(page)
            recorder.forget(page)
            return real_page_close(*args, **kwargs)

        page.close = close
        return page

    def instrument_context(context: Any) -> Any:
        real_new_page, real_context_close = context.new_page, context.close
        context.new_page = lambda *a, **k: instrument_page(real_new_page(*a, **k))

        def close(*args: Any, **kwargs: Any) -> Any:
            for page in context.pages:
                recorder.take(page)
                recorder.forget(page)
            return real_context_close(*args, **kwargs)

        context.close = close
        return context

    def new_context(*args: Any, **kwargs: Any) -> Any:
        return instrument_context(real_new_context(*args, **kwargs))

    def new_page(*args: Any, **kwargs: Any) -> Any:
        context = new_context(*args, **kwargs)
        return context.new_page()

    def close(*args: Any, **kwargs: Any) -> Any:
        for context in browser.contexts:
            for page in context.pages:
                recorder.take(page)
                recorder.forget(page)
        return real_close(*args, **kwargs)

    browser.new_context, browser.new_page, browser.close = new_context, new_page, close
    return browser


# --- Across processes ------------------------------------------------------------

def run_dir(config: pytest.Config) -> Path:
    """The run's coverage directory, shared by the controller and its workers (a
    worker's temporary directory is inside the controller's)."""
    base = config._tmp_path_factory.getbasetemp()  # as pytest-xdist does
    return (base.parent if hasattr(config, "workerinput") else base) / "js-coverage"


def selection(items: Sequence[pytest.Item], deselected: Sequence[pytest.Item]) -> dict[str, Any]:
    """Whether this collection is a full run of the browser tests: every test file of
    tests/site collected, and no test that uses the browser deselected."""
    collected = {Path(item.path) for item in [*items, *deselected]}
    missing = sorted(path.name for path in SITE_TESTS.glob("test_*.py") if path not in collected)
    left_out = sorted(item.nodeid for item in deselected
                      if "browser" in getattr(item, "fixturenames", ()))
    ran = sum("browser" in getattr(item, "fixturenames", ()) for item in items)
    return {"full": not missing and not left_out and ran > 0,
            "missing_files": missing, "deselected_browser_tests": left_out[:10],
            "browser_tests": ran}


def measure(records: Iterable[dict[str, Any]], sources: dict[str, str]) -> dict[str, Any]:
    """Covered and executable lines per script, merged over every document of every
    record (one record per browser), and the total of the scripts in CHECKED."""
    documents: dict[str, list[list[Range]]] = {name: [] for name in sources}
    stale: dict[str, int] = {}
    loaded = lost = 0
    for record in records:
        loaded += record["loaded"]
        lost += record["lost"]
        for document in record["documents"]:
            name = document["script"]
            if name not in sources:
                continue
            units = len(sources[name].encode("utf-16-le")) // 2
            served = document.get("sha1")  # None: the site could not be asked
            if (served is not None and served != digest(sources[name])
                    or script_end(document["functions"]) > units):
                stale[name] = stale.get(name, 0) + 1  # another version of the script ran
                continue
            documents[name].append(covered_ranges(document["functions"]))
    scripts: dict[str, dict[str, Any]] = {}
    for name, source in sources.items():
        executable, covered = line_coverage(source, union(documents[name]))
        done = set(covered)
        scripts[name] = {"covered": len(covered), "executable": len(executable),
                         "percent": percent(len(covered), len(executable)),
                         "documents": len(documents[name]), "other_versions": stale.get(name, 0),
                         "uncovered_lines": spans([line for line in executable if line not in done])}
    checked = [scripts[name] for name in CHECKED if name in scripts]
    covered_total = sum(s["covered"] for s in checked)
    executable_total = sum(s["executable"] for s in checked)
    return {"scripts": scripts,
            "total": {"scripts": [n for n in CHECKED if n in scripts], "covered": covered_total,
                      "executable": executable_total,
                      "percent": percent(covered_total, executable_total)},
            "documents_loaded": loaded, "documents_lost_to_clicks": lost}


def spans(lines: Sequence[int]) -> list[str]:
    """Line numbers as runs: [3, 4, 5, 9] is ["3-5", "9"]."""
    runs: list[list[int]] = []
    for line in lines:
        if runs and runs[-1][1] == line - 1:
            runs[-1][1] = line
        else:
            runs.append([line, line])
    return [f"{a}-{b}" if b > a else f"{a}" for a, b in runs]


def percent(part: int, whole: int) -> float:
    """part / whole in percent, rounded down to 0.1 (0 of 0 is 0)."""
    return (part * 1000 // whole) / 10 if whole else 0.0


def _read_jsonl(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(paths)
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def exit_status(full_run: bool, total_percent: float, exitstatus: int) -> int:
    """The session's exit status: a passing full run below THRESHOLD fails (1); any
    other keeps its own, so a real failure is never hidden."""
    if exitstatus == 0 and full_run and total_percent < THRESHOLD:
        return int(pytest.ExitCode.TESTS_FAILED)
    return exitstatus


def finish(session: pytest.Session, exitstatus: int) -> None:
    """Merge and check (see _finish); an error in doing so fails a passing run, clearly,
    and never changes the exit status of a failing one."""
    try:
        _finish(session, exitstatus)
    except Exception as error:  # noqa: BLE001 - reported in the summary instead
        session.config.stash[RESULT] = {"error": f"{type(error).__name__}: {error}"}
        if exitstatus == 0 and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _finish(session: pytest.Session, exitstatus: int) -> None:
    """At the end of a session: a worker leaves what it collected for the controller;
    the controller (or pytest without workers) merges, reports, and fails a full run
    below THRESHOLD. A failing run keeps its own exit status."""
    config = session.config
    directory = run_dir(config)
    xdist_controller = config.pluginmanager.has_plugin("dsession")
    if not xdist_controller:
        directory.mkdir(parents=True, exist_ok=True)
        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        chosen = selection(session.items, config.stash.get(DESELECTED, []))
        (directory / f"selection-{worker}.json").write_text(json.dumps(chosen), encoding="utf-8")
    if hasattr(config, "workerinput"):
        return
    records = _read_jsonl(directory.glob("coverage-*.jsonl")) if directory.is_dir() else []
    if not records:
        return  # no browser started (none selected, or Chromium missing): nothing to say
    choices = [json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("selection-*.json")]
    sources = {name: (SOURCES / name).read_text(encoding="utf-8") for name in CHECKED}
    result = measure(records, sources)
    result["threshold"] = THRESHOLD
    result["full_run"] = bool(choices) and all(choice["full"] for choice in choices)
    result["failed"] = result["full_run"] and result["total"]["percent"] < THRESHOLD
    status = exit_status(result["full_run"], result["total"]["percent"], int(session.exitstatus))
    if status != session.exitstatus:
        session.exitstatus = pytest.ExitCode(status)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    config.stash[RESULT] = result


def summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The coverage per script in the terminal summary, and why a run failed on it."""
    result = config.stash.get(RESULT, None)
    if result is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section("JavaScript coverage (Chromium's V8, lines)")
    if "error" in result:
        write(f"FAIL JavaScript coverage could not be measured: {result['error']}",
              red=True, bold=True)
        return
    for name, script in result["scripts"].items():
        write(f"{name:<16}{script['covered']:>5} / {script['executable']:<5}"
              f"{script['percent']:>6.1f} %   ({script['documents']} distinct results)")
    total = result["total"]
    write(f"{'total':<16}{total['covered']:>5} / {total['executable']:<5}{total['percent']:>6.1f} %"
          f"   (required: {result['threshold']:.0f} % on a full run of tests/site)")
    write("run-worker.js: not measured (it runs in a worker, which the page's session does not see)")
    write(f"{result['documents_loaded']} documents loaded; {result['documents_lost_to_clicks']} left"
          " by a click before their coverage could be taken (not counted)")
    if not result["full_run"]:
        write("Not a full run of the browser tests: reported, not checked.")
    if result["failed"]:
        write(f"FAIL Required JavaScript coverage of {result['threshold']:.0f} % not reached: "
              f"total {total['percent']:.1f} % (see {REPORT_NAME})", red=True, bold=True)
