"""Shared fixtures: the built site, a local server for it, and snippet runs."""

from __future__ import annotations

import collections
import contextlib
import functools
import gzip
import http.server
import io
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from sitebuild.facts import reader_env
from tests import builds

# One Hypothesis profile for the whole suite. A loaded machine (CI runs two workers,
# each starting engines and Chromium) must not fail a correct example: no deadline,
# no "too slow" health check. A failure prints the blob that replays it.
settings.register_profile(
    "edd", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile("edd")

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "snippets"
DOCS = ROOT / "docs"

SITE_TESTS = ROOT / "tests" / "site"
# Sweeps of every page: one test per page, spread over the workers one by one.
# Every other file goes whole to one worker, as its fixtures (engines, a browser,
# the site's pages) are made per file (pytest_xdist_make_scheduler).
SPREAD = {f"tests/site/{name}.py" for name in ("test_accessibility", "test_copy")}
# Files whose single tests take a minute or more: they start first among the site's
# files, so the page sweeps, which can go to either worker, fill in at the end.
LONG_FIRST = [f"tests/site/{name}.py" for name in (
    "test_built_site", "test_search", "test_zensical", "test_site_meta", "test_run_button",
    "test_layout")]


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests for the workers: the examples' own tests first (the site is
    being built meanwhile, see pytest_configure), most tests per file first; then the
    site's long files; then the page sweeps. Order inside a file is kept."""
    counts = collections.Counter(map(_file_of, items))
    rank = {name: i for i, name in enumerate(LONG_FIRST)}

    def order(item: pytest.Item) -> tuple:
        name = _file_of(item)
        if not name.startswith("tests/site/"):
            return (0, 0, -counts[name], name)
        if name in SPREAD:
            return (2, 0, 0, name)
        return (1, rank.get(name, len(rank)), -counts[name], name)

    items.sort(key=order)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Hand the workers whole files, in collection order, except the page sweeps,
    whose tests go one by one to whichever worker is free."""
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndSweeps(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.split("::")[0]
            return nodeid if name in SPREAD else name

    return FilesAndSweeps(config, log)


# --- The built site -------------------------------------------------------------
# The suite's builds (tests/builds.py) are started by the main process before the tests
# start, in the background: the examples' own tests run meanwhile, and the first test
# that needs a build waits for it.


def _wants_site(config: pytest.Config) -> bool:
    """Does the run include tests of the built site?"""
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == SITE_TESTS or SITE_TESTS in path.parents or path in SITE_TESTS.parents:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or os.environ.get(builds.VARIABLE) \
            or not _wants_site(config):
        return
    config._edd_builds = builds.start()  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    started = getattr(config, "_edd_builds", None)
    if started:
        started.stop()
        os.environ.pop(builds.VARIABLE, None)
        import shutil

        shutil.rmtree(started.folder, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Chromium's coverage of the site's scripts: merged by the controller, which fails
    a full run below the threshold (tests/site/js_coverage.py)."""
    from tests.site import js_coverage

    js_coverage.finish(session, exitstatus)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    from tests.site import js_coverage

    js_coverage.summary(terminalreporter, config)


@pytest.fixture(scope="session")
def built_site() -> Path:
    """The site as `mkdocs build --strict` builds it from the current sources (not
    --quiet: it hides the warnings that strict mode counts, so a broken link would
    pass), with no deployment address or repository (tests/builds.py)."""
    site, code, output = builds.wait("site")
    if code != 0:
        pytest.fail("mkdocs build --strict failed:\n" + output)
    return site


COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request."""

    def log_message(self, *args: object) -> None:
        pass


class _Gzip(_Quiet):
    """Text sent gzip-compressed when the browser asks, as static hosts do."""

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir() and self.path.split("?")[0].endswith("/"):
            path = path / "index.html"
        kind = self.guess_type(str(path))
        if (not path.is_file() or not kind.startswith(COMPRESSIBLE)
                or "gzip" not in self.headers.get("Accept-Encoding", "")):
            return super().send_head()
        body = gzip.compress(path.read_bytes(), 6)
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


@contextlib.contextmanager
def serve(directory: Path, compress: bool = False) -> Iterator[str]:
    """Serve a directory on 127.0.0.1 on a free port, as a static host would; yields
    its URL. ``compress`` sends text gzip-compressed (for measuring page weight)."""
    handler = functools.partial(_Gzip if compress else _Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def site_url(built_site: Path):
    """Serve the built site on 127.0.0.1 on a free port for the session."""
    with serve(built_site) as url:
        yield url


def run_as_reader(code: str, engines: dict[str, str] | None = None,
                  ) -> subprocess.CompletedProcess[str]:
    """Run code as a reader would after pasting it: fresh interpreter, empty
    directory, project not on the path (``-I``), only declared dependencies,
    and, for engine-backed examples, the engines' addresses in the environment."""
    return _run_as_reader(code, tuple(sorted((engines or {}).items())))


@functools.cache
def _run_as_reader(code: str, engines: tuple[tuple[str, str], ...]):
    with tempfile.TemporaryDirectory() as empty:
        script = Path(empty) / "pasted.py"
        script.write_text(code, encoding="utf-8")
        return subprocess.run([sys.executable, "-I", str(script)], cwd=empty, check=False,
                              env=reader_env(dict(engines)),
                              capture_output=True, text=True, timeout=300)


# Real engines, available to every test (see tests/engines.py).
from tests.engines import (  # noqa: F401
    engine_dirs,
    fresh_engine_env,
    kafka_factory,
    kafka_server,
    nats_factory,
    nats_server,
    postgres_db,
    postgres_server,
    rabbitmq_server,
    redis_factory,
    redis_server,
)
