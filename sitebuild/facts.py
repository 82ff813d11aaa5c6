"""Facts the build and the tests share, each stated once."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
TESTS = ROOT / "tests"
RECORDED = DOCS / "data" / "outputs"
BENCH_DATA = DOCS / "data" / "bench"

#: Chapter packages of ``snippets/`` and ``docs/``, in reading order, with the
#: titles the navigation gives them (a site test compares with ``mkdocs.yml``).
CHAPTERS: dict[str, str] = {
    "course": "Course",
    "fundamentals": "Fundamentals",
    "event_design": "Event Design",
    "messaging": "Messaging Systems",
    "processing": "Event Processing",
    "event_sourcing": "Event Sourcing",
    "cqrs": "CQRS",
    "testing": "Testing Event-Driven Systems",
    "monitoring": "Monitoring and Observability",
}

#: A section marker line in a module: ``# --8<-- [start:name]`` or ``[end:name]``.
SECTION_MARKER = re.compile(r"^[ \t]*#[ \t]*-+8<-+[ \t]+\[(?P<edge>start|end):(?P<name>[\w-]+)\][ \t]*$",
                            re.MULTILINE)

#: The engines an example may need: the environment variable with its address
#: (what the module reads and the test fixtures set) and the client libraries
#: that betray it.
ENGINES: dict[str, dict[str, object]] = {
    "Redis": {"var": "REDIS_URL", "imports": ("redis",)},
    "PostgreSQL": {"var": "DATABASE_URL", "imports": ("psycopg", "psycopg2", "asyncpg")},
    "RabbitMQ": {"var": "AMQP_URL", "imports": ("aio_pika", "aiormq", "pika")},
    "NATS": {"var": "NATS_URL", "imports": ("nats",)},
    "Kafka": {"var": "KAFKA_BOOTSTRAP", "imports": ("aiokafka", "kafka", "confluent_kafka")},
}
ENGINE_VARS: dict[str, str] = {str(spec["var"]): name for name, spec in ENGINES.items()}
ENGINE_IMPORTS: dict[str, str] = {module: name for name, spec in ENGINES.items()
                                  for module in spec["imports"]}  # type: ignore[union-attr]

#: Headless Chromium, for the diagrams and the browser tests.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def reader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a reader who pasted an example into a fresh interpreter:
    nothing of ours but the PATH, a fixed hash seed (set iteration order is part of
    some outputs) and UTF-8; plus the engines' addresses where it needs them."""
    return {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0",
            "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8", **(extra or {})}


def modules() -> list[Path]:
    """Every example module of ``snippets/``."""
    return sorted(p for p in SNIPPETS.glob("*/*.py") if p.name != "__init__.py")


def as_shown(source: str) -> str:
    """A module as its whole-module block shows it: section markers left out."""
    return "\n".join(line for line in source.splitlines()
                     if not SECTION_MARKER.fullmatch(line)).rstrip("\n")


def section(source: str, name: str) -> str | None:
    """The lines between ``[start:name]`` and ``[end:name]``, dedented by their
    common indent, other markers left out; ``None`` if there is no such section."""
    lines = source.splitlines()
    start = end = None
    for number, line in enumerate(lines):
        found = SECTION_MARKER.fullmatch(line)
        if found and found["name"] == name:
            if found["edge"] == "start" and start is None:
                start = number
            elif found["edge"] == "end" and start is not None:
                end = number
                break
    if start is None or end is None:
        return None
    body = [line for line in lines[start + 1:end] if not SECTION_MARKER.fullmatch(line)]
    return textwrap.dedent("\n".join(body))


def tests_of(relative: str) -> list[Path]:
    """The test files that import ``snippets/<relative>``."""
    dotted = "snippets." + relative.removesuffix(".py").replace("/", ".")
    pattern = re.compile(rf"\b(?:from|import)\s+{re.escape(dotted)}\b|"
                         rf"\bfrom\s+snippets\.{re.escape(relative.split('/')[0])}\s+import\s+"
                         rf"[^\n]*\b{re.escape(Path(relative).stem)}\b")
    return sorted(p for p in TESTS.rglob("test_*.py")
                  if pattern.search(p.read_text(encoding="utf-8")))
