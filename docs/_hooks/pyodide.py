"""MkDocs hook: a Run button under every example the reader's browser can run.

Python runs in the page through Pyodide, served by this site (never from a
CDN) and loaded only when a reader first presses Run:

* The pinned npm tarball of Pyodide is downloaded once into ``.cache/pyodide/``
  (gitignored), checked against its pinned sha512, and its core files are
  published under ``assets/vendor/pyodide/``. ``EDD_PYODIDE_TARBALL`` may name
  a local copy of the tarball (or a mirror's URL) for machines without
  access to registry.npmjs.org; it is checked against the same digest.
* A whole-module Python block gets a Run button when the page also runs that
  module at build time (``<!-- run: -->``, so there is an output to compare
  with) and the module needs nothing the browser lacks: only the standard
  library, no threads, processes, sockets or event loop of its own. Any other
  whole-module block gets a one-line note saying why it cannot run in the
  page (it needs Redis, a package, threads, ...).
  ``assets/javascripts/run.js`` does the rest, with no work at page load: the
  bar is in the HTML as the reader sees it, hidden by run.css only where
  scripts do not run (no ``js`` class on ``<html>``), and one listener on the
  document handles its buttons.
* A module that calls ``asyncio.run()`` from synchronous code needs
  WebAssembly stack switching (JSPI), which Chromium has and Firefox and
  Safari lack: its bar is followed by a note saying so, and run.css shows one
  or the other depending on the class ``ed-no-jspi`` that the head script of
  ``overrides/main.html`` puts on ``<html>`` where the browser lacks it.
* If Pyodide cannot be fetched (offline, no cache), the build still succeeds
  and says so at INFO level; every block then carries the note "Run is
  unavailable in this build". A strict build counts warnings as errors, so
  this deliberately is not a warning: the browser tests notice the missing
  buttons instead.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mkdocs.structure.files import File, Files

VERSION = "314.0.7"
TARBALL = f"https://registry.npmjs.org/pyodide/-/pyodide-{VERSION}.tgz"
# `npm view pyodide@314.0.7 dist.integrity`
INTEGRITY = ("sha512-0YvXxEhfEdpLfb/XkM2BFAeMROq0iMUX2bzzH9pOttyMcWkwq+HbE5uyuGD82LN7y2q+"
             "SNvi/6V5JEsOlD2R1A==")
# What the loader fetches (checked in Chromium), plus package.json for the licence.
CORE = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
        "pyodide-lock.json", "package.json")
ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "snippets"
CACHE = ROOT / ".cache" / "pyodide" / VERSION
VENDOR = "assets/vendor/pyodide"
NOTICE = f"""Pyodide {VERSION}: https://pyodide.org, https://github.com/pyodide/pyodide
Unmodified core files of the npm package `pyodide`.
Licence: Mozilla Public License 2.0, https://mozilla.org/MPL/2.0/
python_stdlib.zip holds the Python standard library: Python Software Foundation License.
"""

log = logging.getLogger("mkdocs.hooks.pyodide")

SECTION_MARKER = re.compile(r"^\s*#\s*-{1,}8<-{1,}\s+\[(start|end):[\w-]+\]\s*$")
BLOCK = re.compile(
    r'<div class="language-(?:python|py) highlight">'
    r'(?:<span class="filename">(?P<title>.*?)</span>)?<pre>(?P<pre>.*?)</pre></div>', re.DOTALL)
OUTPUT = re.compile(r'<div class="ed-output" data-snippet="(?P<path>[\w/]+\.py)">')

# Engines, by the client library a module imports or the address it reads.
ENGINE_IMPORTS = {"redis": "Redis", "psycopg": "PostgreSQL", "psycopg2": "PostgreSQL",
                  "asyncpg": "PostgreSQL", "aio_pika": "RabbitMQ", "aiormq": "RabbitMQ",
                  "pika": "RabbitMQ", "nats": "NATS", "aiokafka": "Kafka", "kafka": "Kafka",
                  "confluent_kafka": "Kafka"}
ENGINE_VARS = {"REDIS_URL": "Redis", "DATABASE_URL": "PostgreSQL", "AMQP_URL": "RabbitMQ",
               "NATS_URL": "NATS", "KAFKA_BOOTSTRAP": "Kafka"}
# What Python in a browser tab cannot do, found by name in the module.
THREADS = {"Thread", "Timer", "ThreadPoolExecutor", "to_thread", "run_in_executor"}
PROCESSES = {"subprocess", "multiprocessing", "ProcessPoolExecutor"}
NETWORK = {"socket", "socketserver", "http.server", "http.client", "urllib.request",
           "open_connection", "start_server", "create_connection"}
# A module that drives an event loop of its own cannot run (a selector loop needs a
# socket pair). `asyncio.run()` in the main guard is fine: the page awaits the coroutine
# instead. Elsewhere it needs WebAssembly stack switching (JSPI): see STACK_SWITCHING.
OWN_LOOP = {"SelectorEventLoop", "ProactorEventLoop", "Runner", "new_event_loop",
            "run_until_complete", "run_forever"}
# Shown instead of the bar of such a module where the browser lacks JSPI (run.css).
STACK_SWITCHING = ("Calls asyncio.run() from synchronous code, which needs WebAssembly "
                   "stack switching, missing in this browser: run it locally.")
NOT_IN_PYODIDE = {"tkinter", "turtle", "turtledemo", "curses", "dbm", "readline", "venv",
                  "ensurepip", "idlelib", "msvcrt", "winreg", "winsound"}


@dataclass(frozen=True)
class Verdict:
    """Can the page run a module? If not, ``note`` says why in a few words."""

    runnable: bool
    note: str = ""
    stack_switching: bool = False  # calls asyncio.run() from synchronous code


_state: dict[str, object] = {"available": False, "reason": "not fetched yet"}


# --- Fetching Pyodide -------------------------------------------------------

def _digest_ok(data: bytes) -> bool:
    algorithm, _, expected = INTEGRITY.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected


def _download() -> bytes:
    source = os.environ.get("EDD_PYODIDE_TARBALL") or TARBALL
    if "://" not in source:
        return Path(source).read_bytes()
    with urllib.request.urlopen(source, timeout=120) as response:
        return response.read()


def fetch() -> Path:
    """The cache directory holding Pyodide's core files, downloading them once.

    Raises ``OSError`` or ``ValueError`` (with a reason) when that is impossible.
    """
    if all((CACHE / name).is_file() for name in CORE):
        return CACHE
    data = _download()
    if not _digest_ok(data):
        raise ValueError(f"pyodide-{VERSION}.tgz does not match its pinned sha512")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as temporary:
        staging = Path(temporary) / VERSION
        staging.mkdir()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for name in CORE:
                member = archive.extractfile(f"package/{name}")
                if member is None:
                    raise ValueError(f"pyodide-{VERSION}.tgz has no package/{name}")
                (staging / name).write_bytes(member.read())
        shutil.rmtree(CACHE, ignore_errors=True)
        staging.rename(CACHE)
    return CACHE


@functools.cache
def _pyodide_imports() -> frozenset[str]:
    """Import names of the packages Pyodide's full distribution builds."""
    lock = CACHE / "pyodide-lock.json"
    if not lock.is_file():
        return frozenset()
    packages = json.loads(lock.read_text(encoding="utf-8"))["packages"].values()
    return frozenset(name for package in packages for name in package.get("imports", []))


# --- Deciding what can run --------------------------------------------------

def _as_shown(path: Path) -> str:
    """A module as a whole-file include shows it: section markers removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not SECTION_MARKER.match(line)).rstrip("\n")


def _modules() -> dict[str, str]:
    """Every snippet module's shown text -> its path relative to ``snippets/``."""
    return {_as_shown(path): f"{path.parent.name}/{path.name}"
            for path in sorted(SNIPPETS.glob("*/*.py")) if path.name != "__init__.py"}


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@functools.cache
def judge(source: str) -> Verdict:
    """Whether the browser can run a module, from its imports and the names it uses."""
    tree = ast.parse(source)
    imported: set[str] = set()
    names: set[str] = set()
    own_loop = nested_run = False
    guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    in_guards = {id(n) for guard in guards for n in ast.walk(guard)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "asyncio"):
            own_loop |= node.attr in OWN_LOOP
            nested_run |= node.attr == "run" and id(node) not in in_guards
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            own_loop |= any(alias.name in OWN_LOOP for alias in node.names)
            nested_run |= any(alias.name == "run" for alias in node.names)
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    tops = {name.split(".")[0] for name in imported}
    engines = sorted({ENGINE_IMPORTS[t] for t in tops if t in ENGINE_IMPORTS}
                     | {engine for var, engine in ENGINE_VARS.items() if var in source})
    if engines:
        return Verdict(False, f"Needs {_join(engines)}: run it locally against a real server.")
    packages = sorted(t for t in tops if t not in sys.stdlib_module_names and t != "__future__")
    if packages:
        known = _pyodide_imports()
        missing = [p for p in packages if p not in known] if known else packages
        if missing and known:
            return Verdict(False, f"Needs {_join(missing)}, not in Pyodide: run it locally.")
        return Verdict(False, f"Needs {_join(packages)}; the in-page Python has the standard "
                              "library only: run it locally.")
    lacking = sorted(tops & NOT_IN_PYODIDE)
    if lacking:
        return Verdict(False, f"Needs {_join(lacking)}, which Pyodide lacks: run it locally.")
    uses = names | imported | tops
    if uses & THREADS:
        return Verdict(False, "Starts threads, which Python in a browser tab cannot: "
                              "run it locally.")
    if uses & PROCESSES:
        return Verdict(False, "Starts processes, which Python in a browser tab cannot: "
                              "run it locally.")
    if uses & NETWORK:
        return Verdict(False, "Opens network connections, which Python in a browser tab "
                              "cannot: run it locally.")
    if own_loop:
        return Verdict(False, "Runs an asyncio event loop of its own, which Python in a "
                              "browser tab cannot: run it locally.")
    return Verdict(True, stack_switching=nested_run)


def _code_text(pre: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", pre)).rstrip("\n")


def _bar(relative: str, verdict: Verdict) -> str:
    if not verdict.runnable:
        return (f'<p class="ed-run-note" data-snippet="{relative}">'
                f"{html.escape(verdict.note)}</p>")
    name = Path(relative).name
    needs = ' data-needs="stack-switching"' if verdict.stack_switching else ""
    note = (f'<p class="ed-run-note" data-snippet="{relative}"{needs}>'
            f"{html.escape(STACK_SWITCHING)}</p>" if verdict.stack_switching else "")
    return (f'<div class="ed-run" data-snippet="{relative}" data-filename="{name}" '
            f'data-pyodide="{VERSION}"{needs} data-state="idle">'
            '<button type="button" class="md-button md-button--primary ed-run__start" '
            f'aria-label="Run {name} in your browser">Run</button>'
            f'<button type="button" class="md-button ed-run__stop" aria-label="Stop {name}" '
            "disabled>Stop</button>"
            '<span class="ed-run__status" role="status" aria-live="polite">'
            "Runs in your browser (Pyodide, Python 3.14): nothing is sent anywhere."
            "</span></div>" + note)


# --- MkDocs events ----------------------------------------------------------

def on_files(files: Files, config) -> Files:
    """Publish Pyodide's core files under ``assets/vendor/pyodide/``, fetching them once."""
    try:
        cache = fetch()
    except (OSError, ValueError) as error:
        _state.update(available=False, reason=str(error))
        log.info("Run buttons disabled: Pyodide %s could not be fetched (%s). Set "
                 "EDD_PYODIDE_TARBALL to a local copy of %s to enable them.",
                 VERSION, error, TARBALL)
        return files
    _state.update(available=True, reason="")
    for name in CORE:
        files.append(File.generated(config, f"{VENDOR}/{name}", abs_src_path=str(cache / name)))
    files.append(File.generated(config, f"{VENDOR}/NOTICE.txt", content=NOTICE))
    return files


def on_page_content(html_text: str, page, config, files) -> str:
    """Put a Run bar, or a note saying why not, under every whole-module Python block."""
    if 'class="language-py' not in html_text:
        return html_text
    modules = _modules()
    run_here = set(OUTPUT.findall(html_text))

    def rewrite(match: re.Match[str]) -> str:
        title = html.unescape(re.sub(r"<[^>]+>", "", match["title"] or ""))
        relative = modules.get(_code_text(match["pre"]))
        if relative is None or "excerpt" in title.lower():
            return match[0]
        verdict = judge((SNIPPETS / relative).read_text(encoding="utf-8"))
        if verdict.runnable and relative not in run_here:
            verdict = Verdict(False, "This page does not run this module, so there is no "
                                     "output to compare with: run it locally.")
        if verdict.runnable and not _state["available"]:
            verdict = Verdict(False, "Run is unavailable in this build: Pyodide could not be "
                                     "downloaded when the site was built.")
        return match[0] + _bar(relative, verdict)

    return BLOCK.sub(rewrite, html_text)
