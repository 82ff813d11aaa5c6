"""What a page shows for a module that the build cannot run (it needs an engine).

The page renders ``docs/data/outputs/<chapter>/<module>.txt`` through the
``<!-- recorded: -->`` directive; these tests compare it line by line.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS = Path(__file__).resolve().parents[2] / "docs" / "data" / "outputs" / "event_sourcing"


def shown_output(page: str, module: str) -> list[str]:
    """The lines recorded for ``module`` (``page`` names where they are shown)."""
    path = OUTPUTS / module.replace(".py", ".txt")
    assert path.is_file(), f"{page} shows no recorded output for {module}"
    return path.read_text(encoding="utf-8").splitlines()
