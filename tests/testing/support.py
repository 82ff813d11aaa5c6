"""Helpers for this chapter's tests: run snippet modules under pytest the way a reader would."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from sitebuild.facts import reader_env

SNIPPETS = Path(__file__).resolve().parents[2] / "snippets" / "testing"


def pytest_as_reader(*modules: str, args: tuple[str, ...] = (),
                     env: dict[str, str] | None = None) -> dict[str, Counter[str]]:
    """Copy ``snippets/testing/<module>`` files into one empty directory and run ``pytest``
    on them there, in a fresh interpreter with the project off the path (``-I``), as a
    reader who pasted them would. Returns, per module, the count of each outcome
    (``{"unit_testing_given_when_then.py": Counter(passed=7)}``)."""
    with tempfile.TemporaryDirectory() as empty:
        for module in modules:
            shutil.copy(SNIPPETS / module, empty)
        done = subprocess.run([sys.executable, "-I", "-m", "pytest", "-q", "-rA",
                               "-p", "no:cacheprovider", *args, *modules],
                              cwd=empty, env=reader_env(env), capture_output=True, text=True,
                              timeout=300, check=False)
    assert done.returncode == 0, f"pytest failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    outcomes: dict[str, Counter[str]] = {module: Counter() for module in modules}
    for outcome, times, module in re.findall(
            r"^(PASSED|FAILED|SKIPPED|ERROR) (?:\[(\d+)\] )?([\w.]+\.py)", done.stdout, re.MULTILINE):
        outcomes[module][outcome.lower()] += int(times or 1)  # -rA folds skips: "SKIPPED [2] ..."
    return outcomes
