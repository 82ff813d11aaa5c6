"""Run every `tests/<chapter>/bench_*.py` (or those matching argv) and report the files."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def main(selected: list[str]) -> None:
    for path in sorted(TESTS.glob("*/bench_*.py")):
        name = f"tests.{path.parent.name}.{path.stem}"
        if selected and not any(s in name for s in selected):
            continue
        print(f"== {name}", flush=True)
        importlib.import_module(name).main()


if __name__ == "__main__":
    main(sys.argv[1:])
