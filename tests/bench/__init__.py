"""Benchmarks: run by `make bench`, never by `make test`.

Each chapter keeps its benchmarks beside its tests as `tests/<chapter>/bench_<topic>.py`
with a `main()`; they write JSON data files under `docs/data/bench/` that the pages
render with the `<!-- bench: ... -->` directive.
"""
