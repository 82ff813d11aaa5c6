"""The Run buttons' build side: Pyodide served by the site, and which modules it can run.

Python runs in the reader's browser through Pyodide, served by this site (never
from a CDN) and loaded only when a reader first presses Run
(``docs/assets/javascripts/run.js``).

* `fetch` downloads the pinned npm tarball of Pyodide once, checks its pinned
  sha512 and puts its core files in ``docs/assets/vendor/pyodide/`` (ignored
  by git), from where MkDocs and Zensical publish them like any asset.
  ``EDD_PYODIDE_TARBALL`` may name a local copy of the tarball (or a mirror's
  URL) for machines without access to registry.npmjs.org.
* `judge` decides from a module's source whether the browser can run it: only
  the standard library, no threads, processes, sockets or event loop of its
  own. A module whose ``asyncio.run()`` the runner cannot turn into an
  ``await`` (the rule is ``main_guard_awaits`` in ``run_driver.py``, which the
  runner itself uses) needs WebAssembly stack switching (JSPI), which
  Chromium has and Firefox and Safari lack.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sitebuild.facts import DOCS, ENGINE_IMPORTS, ENGINE_VARS

VERSION = "314.0.7"
TARBALL = f"https://registry.npmjs.org/pyodide/-/pyodide-{VERSION}.tgz"
# `npm view pyodide@314.0.7 dist.integrity`
INTEGRITY = ("sha512-0YvXxEhfEdpLfb/XkM2BFAeMROq0iMUX2bzzH9pOttyMcWkwq+HbE5uyuGD82LN7y2q+"
             "SNvi/6V5JEsOlD2R1A==")
# What the loader fetches (checked in Chromium), plus package.json for the licence.
CORE = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
        "pyodide-lock.json", "package.json")
VENDOR = DOCS / "assets" / "vendor" / "pyodide"
DRIVER = DOCS / "assets" / "javascripts" / "run_driver.py"
NOTICE = f"""Pyodide {VERSION}: https://pyodide.org, https://github.com/pyodide/pyodide
Unmodified core files of the npm package `pyodide`.
Licence: Mozilla Public License 2.0, https://mozilla.org/MPL/2.0/
python_stdlib.zip holds the Python standard library: Python Software Foundation License.
"""

log = logging.getLogger("mkdocs.sitebuild.pyodide")

# What Python in a browser tab cannot do, found by name in the module.
THREADS = {"Thread", "Timer", "ThreadPoolExecutor", "to_thread", "run_in_executor"}
PROCESSES = {"subprocess", "multiprocessing", "ProcessPoolExecutor"}
NETWORK = {"socket", "socketserver", "http.server", "http.client", "urllib.request",
           "open_connection", "start_server", "create_connection"}
# A selector event loop needs a socket pair, which the browser lacks.
OWN_LOOP = {"SelectorEventLoop", "ProactorEventLoop", "Runner", "new_event_loop",
            "run_until_complete", "run_forever"}
NOT_IN_PYODIDE = {"tkinter", "turtle", "turtledemo", "curses", "dbm", "readline", "venv",
                  "ensurepip", "idlelib", "msvcrt", "winreg", "winsound"}
#: Shown instead of the bar of such a module where the browser lacks JSPI (run.css).
STACK_SWITCHING = ("Calls asyncio.run() from synchronous code, which needs WebAssembly "
                   "stack switching, missing in this browser: run it locally.")
NO_OUTPUT = "This page does not run this module, so there is no output to compare with: run it locally."
UNAVAILABLE = ("Run is unavailable in this build: Pyodide could not be downloaded when the "
               "site was built.")


@dataclass(frozen=True)
class Verdict:
    """Can the page run a module? If not, ``note`` says why in a few words."""

    runnable: bool
    note: str = ""
    stack_switching: bool = False  # an asyncio.run() the runner cannot await


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


def _complete(folder: Path) -> bool:
    stamp = folder / "NOTICE.txt"
    return (all((folder / name).is_file() for name in CORE) and stamp.is_file()
            and stamp.read_text(encoding="utf-8") == NOTICE)


def fetch(folder: Path = VENDOR) -> Path:
    """``folder`` holding Pyodide's core files and its notice, downloading them once.

    Raises ``OSError`` or ``ValueError`` (with a reason) when that is impossible.
    """
    if _complete(folder):
        return folder
    data = _download()
    if not _digest_ok(data):
        raise ValueError(f"pyodide-{VERSION}.tgz does not match its pinned sha512")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as temporary:
        staging = Path(temporary) / "pyodide"
        staging.mkdir()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for name in CORE:
                try:
                    member = archive.extractfile(f"package/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise ValueError(f"pyodide-{VERSION}.tgz has no package/{name}")
                (staging / name).write_bytes(member.read())
        (staging / "NOTICE.txt").write_text(NOTICE, encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return folder


@functools.cache
def unavailable() -> str:
    """``""`` when Pyodide is in place for this build, else why not (said once, at INFO
    level: a strict build fails on warnings, and a machine without access to npm's
    registry should still build the site; the browser tests notice missing buttons)."""
    try:
        fetch()
    except (OSError, ValueError) as error:
        log.info("Run buttons disabled: Pyodide %s could not be fetched (%s). Set "
                 "EDD_PYODIDE_TARBALL to a local copy of %s to enable them.", VERSION, error, TARBALL)
        return str(error)
    return ""


@functools.cache
def _pyodide_imports() -> frozenset[str]:
    """Import names of the packages Pyodide's full distribution builds."""
    lock = VENDOR / "pyodide-lock.json"
    if not lock.is_file():
        return frozenset()
    packages = json.loads(lock.read_text(encoding="utf-8"))["packages"].values()
    return frozenset(name for package in packages for name in package.get("imports", []))


# --- Deciding what can run --------------------------------------------------

@functools.cache
def driver() -> ModuleType:
    """``run_driver.py``, the code the page's runner runs, imported here for its rules."""
    spec = importlib.util.spec_from_file_location("edd_run_driver", DRIVER)
    assert spec is not None and spec.loader is not None, DRIVER
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calls_run(tree: ast.AST) -> bool:
    """Does ``tree`` still reach for ``asyncio.run``?"""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "run"
                and isinstance(node.value, ast.Name) and node.value.id == "asyncio"):
            return True
        if (isinstance(node, ast.ImportFrom) and node.module == "asyncio"
                and any(alias.name == "run" for alias in node.names)):
            return True
    return False


def engines(source: str) -> list[str]:
    """The engines a module needs, by the client libraries it imports and the
    addresses it reads."""
    tops = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return sorted({ENGINE_IMPORTS[t] for t in tops if t in ENGINE_IMPORTS}
                  | {engine for var, engine in ENGINE_VARS.items() if var in source})


def join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@functools.cache
def judge(source: str) -> Verdict:
    """Whether the browser can run a module, from its imports and the names it uses."""
    tree = ast.parse(source)
    imported: set[str] = set()
    names: set[str] = set()
    own_loop = False
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "asyncio"):
            own_loop |= node.attr in OWN_LOOP
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            own_loop |= any(alias.name in OWN_LOOP for alias in node.names)
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
    needed = engines(source)
    if needed:
        return Verdict(False, f"Needs {join(needed)}: run it locally against a real server.")
    packages = sorted(t for t in tops if t not in sys.stdlib_module_names and t != "__future__")
    if packages:
        known = _pyodide_imports()
        missing = [p for p in packages if p not in known] if known else packages
        if missing and known:
            return Verdict(False, f"Needs {join(missing)}, not in Pyodide: run it locally.")
        return Verdict(False, f"Needs {join(packages)}; the in-page Python has the standard "
                              "library only: run it locally.")
    lacking = sorted(tops & NOT_IN_PYODIDE)
    if lacking:
        return Verdict(False, f"Needs {join(lacking)}, which Pyodide lacks: run it locally.")
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
    return Verdict(True, stack_switching=_calls_run(driver().main_guard_awaits(ast.parse(source))))
