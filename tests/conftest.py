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

# One Hypothesis profile for the whole suite. A loaded machine (CI runs two workers,
# each starting engines and Chromium) must not fail a correct example: no deadline,
# no "too slow" health check. A failure prints the blob that replays it.
settings.register_profile(
    "edd", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile("edd")

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "snippets"
DOCS = ROOT / "docs"

# Files that take minutes each: sweeps of every page in Chromium, every example run
# as pasted or in Pyodide. `make test` hands whole files to its workers in collection
# order (--dist loadfile --no-loadscope-reorder), so these go first and the hundreds
# of short files fill in around them; last, one worker would finish a sweep alone.
SLOW_FIRST = [f"tests/site/{name}.py" for name in (
    "test_accessibility", "test_copy", "test_run_button", "test_built_site",
    "test_sources", "test_layout", "test_search", "test_zensical", "test_site_meta",
    "test_diagrams")]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first, then the others by number of tests, most first (what
    pytest-xdist does when it may reorder); the order inside a file is kept."""
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    counts = collections.Counter(map(file_of, items))
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: (rank.get(file_of(item), len(rank)), -counts[file_of(item)],
                                 file_of(item)))


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `mkdocs build --strict` of the current sources. (Not --quiet: it hides
    the warnings that strict mode counts, so a broken link would pass.)

    Under pytest-xdist the workers share one build: the first to get here builds
    into the run's common temporary directory while the others wait for it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build(tmp_path_factory.mktemp("site"))
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent
    out, done = shared / "site", shared / "site.built"
    with open(shared / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(out)
            done.touch()
    return out


def _build(out: Path) -> Path:
    # The deployment's address and repository (mkdocs.yml) stay out of the suite's build.
    env = {key: value for key, value in os.environ.items()
           if key not in {"SITE_URL", "REPO_URL", "EDIT_URI"}}
    env["NO_MKDOCS_2_WARNING"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}")
    return out


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
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0",
               "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8", **dict(engines)}
        return subprocess.run([sys.executable, "-I", str(script)], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=300)


# Real engines, available to every test (see tests/engines.py).
from tests.engines import (  # noqa: E402,F401
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
