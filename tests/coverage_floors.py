"""The coverage floors `make test` holds, read from the run's coverage data.

``snippets/`` (the examples) must keep 95 % and ``sitebuild/`` (the build) 90 %,
measured with branches. Run after pytest: ``python -m tests.coverage_floors``.
"""

from __future__ import annotations

import io
import sys

import coverage

FLOORS = {"snippets": 95.0, "sitebuild": 90.0}


def main() -> int:
    data = coverage.Coverage()
    data.load()
    failed = False
    for package, floor in FLOORS.items():
        try:
            percent = data.report(include=[f"{package}/*"], file=io.StringIO())
        except coverage.exceptions.NoDataError:
            print(f"coverage of {package}/: no data (run the whole suite first)")
            return 1
        verdict = "ok" if percent >= floor else "BELOW THE FLOOR"
        print(f"coverage of {package}/: {percent:.1f} % (floor {floor:.0f} %): {verdict}")
        failed |= percent < floor
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
