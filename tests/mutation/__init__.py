"""Mutation testing of ``snippets/``: run by ``make mutate``, never by ``make test``.

``python -m tests.mutation`` mutates each snippets module with mutmut 3, runs every mutant
against only the tests that exercise that module, and writes
``docs/data/bench/mutation/<chapter>/<module>.json`` plus ``summary.json``, which the About
page renders. A module whose source and tests are unchanged since its last result is
skipped. ``guarantees.toml`` lists the modules held to 90 % killed; ``equivalent.toml``
lists the surviving mutants that no test can kill, each with its reason.
"""
