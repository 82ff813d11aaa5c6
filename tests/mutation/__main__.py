"""``python -m tests.mutation [SELECTOR ...]``: what ``make mutate`` runs (see runner.py)."""

import sys

from tests.mutation.runner import main

if __name__ == "__main__":
    sys.exit(main())
