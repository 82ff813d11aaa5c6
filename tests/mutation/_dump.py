"""Print mutmut's verdicts as JSON: run inside a finished mutmut work directory.

Kept apart from the runner because it uses mutmut's internals (pinned in requirements.txt):
``{"<mutant name>": {"status": "...", "diff": "..."}}`` for every mutant, with the
unified diff (relative to the mutated function) only for mutants that were not killed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code


def main(paths: list[str]) -> None:
    """Print the verdict (and, unless killed, the diff) of every mutant of ``paths``."""
    verdicts: dict[str, dict[str, str]] = {}
    for path in paths:
        data = SourceFileMutationData(path=Path(path))
        data.load()
        for name, code in data.exit_code_by_key.items():
            status = status_by_exit_code[code]
            diff = "" if status == "killed" else get_diff_for_mutant(name, path=Path(path))
            verdicts[name] = {"status": status, "diff": diff}
    json.dump(verdicts, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
