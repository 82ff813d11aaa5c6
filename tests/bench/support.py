"""Helpers shared by the benchmarks: timing, machine description, data files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "docs" / "data" / "bench"


def machine() -> str:
    """Describe this machine the way a reader needs to weigh the figures."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def median_seconds(run: Callable[[], None], *, repeats: int = 5, warmup: int = 1) -> float:
    """Run ``run`` ``warmup`` times untimed, then ``repeats`` times; return the median."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def write(name: str, *, columns: list[str], rows: list[list[object]], command: str,
          note: str = "") -> Path:
    """Write ``docs/data/bench/<name>.json`` in the shape the page hook renders."""
    path = DATA / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "columns": columns,
        "rows": rows,
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "command": command,
        "note": note,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
