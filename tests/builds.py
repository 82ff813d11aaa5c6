"""The three builds of the site that the suite checks, each made once per run.

* ``site``: ``mkdocs build --strict`` as a reader's local build makes it, with no
  deployment address, repository or edit links (the variables are removed);
* ``published``: the same build as the GitHub workflow makes it, with ``SITE_URL``,
  ``REPO_URL`` and ``EDIT_URI`` set (tests/site/test_site_meta.py);
* ``zensical``: the site built by Zensical alone (tests/site/test_zensical.py).

The main process starts them one after the other in the background before the tests
start (``start``), the suite build first: the examples' own tests run meanwhile, which
mostly wait on engines, and the first test that needs a build waits for it (``wait``).
Each worker finds the builds through ``EDD_SITE_BUILD``. A run that did not start them
(one that names no site test) builds the one it needs when it needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIABLE = "EDD_SITE_BUILD"
BUILDS = ("site", "published", "zensical")
PUBLISHED = {"SITE_URL": "https://example.org/edd/",
             "REPO_URL": "https://github.com/example/edd",
             "EDIT_URI": "edit/main/docs/"}
TIMEOUT = 1500  # seconds; a build takes 30 s on an idle machine


def command(name: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """The command that makes build ``name`` into ``out``, and its environment."""
    env = {key: value for key, value in os.environ.items() if key not in PUBLISHED}
    env["NO_MKDOCS_2_WARNING"] = "1"
    if name == "zensical":
        return [sys.executable, "-m", "sitebuild.zensical", "-d", str(out)], env
    if name == "published":
        env.update(PUBLISHED)
    elif name != "site":
        raise ValueError(f"no build named {name!r}; the builds are {', '.join(BUILDS)}")
    return [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(out)], env


class Builds:
    """The builds of one run, made one after the other in a background thread."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="edd-builds-"))
        self.stopped = False
        self.process: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._run_all, daemon=True)

    def _run_all(self) -> None:
        for name in BUILDS:
            if self.stopped:
                return
            _run(name, self.folder, self)

    def stop(self) -> None:
        """Stop the build under way, start no other."""
        self.stopped = True
        if self.process and self.process.poll() is None:
            self.process.kill()
        self.thread.join(timeout=30)


def _run(name: str, folder: Path, builds: Builds | None = None) -> None:
    """Make one build into ``folder/name``; its output goes to ``name.log`` and its exit
    code, once the log is complete, to ``name.rc``."""
    cmd, env = command(name, folder / name)
    with open(folder / f"{name}.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if builds:
            builds.process = process
        try:
            code = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log.write(f"\nthe build did not finish in {TIMEOUT} s\n")
            code = -1
    partial = folder / f"{name}.rc.partial"
    partial.write_text(str(code))
    partial.rename(folder / f"{name}.rc")


def start() -> Builds:
    """Start every build in the background, one after the other; their folder is
    published in ``EDD_SITE_BUILD`` for the workers."""
    builds = Builds()
    builds.thread.start()
    os.environ[VARIABLE] = str(builds.folder)
    return builds


def wait(name: str) -> tuple[Path, int, str]:
    """Build ``name``'s site folder, exit code and output, once it is done; made here
    and now if no run started the builds."""
    folder = os.environ.get(VARIABLE)
    if not folder:
        folder = tempfile.mkdtemp(prefix="edd-builds-")
        _run(name, Path(folder))
    rc = Path(folder, f"{name}.rc")
    deadline = time.monotonic() + TIMEOUT * len(BUILDS)
    while not rc.exists():
        if time.monotonic() > deadline:
            return Path(folder, name), -1, f"the {name} build did not finish in time"
        time.sleep(0.1)
    return Path(folder, name), int(rc.read_text()), Path(folder, f"{name}.log").read_text()
