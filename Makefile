# Two commands matter: `make serve` and `make test`. Both create .venv with the
# pinned dependencies on first use; only Python 3.11+ is needed beforehand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
# Test processes: one more than the cores, at most 4 (each starts its own engines and
# browser). The examples' tests mostly wait on engines: on 2 cores, 3 processes ran the
# suite in 9.4 minutes where 2 took 11.0 (single runs, 2026-12-06).
JOBS   ?= $(shell n=$$(nproc 2>/dev/null || echo 2); n=$$((n + 1)); [ $$n -gt 4 ] && n=4; echo $$n)
export NO_MKDOCS_2_WARNING := 1

.PHONY: venv serve test build zensical bench mutate diagrams lock clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)  ## create .venv with the pinned dependencies (every target does it first)

serve: $(STAMP)  ## build and serve the site on http://127.0.0.1:8000
	$(BIN)/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

test: $(STAMP)  ## the whole suite: examples, site contract, browser, engines; then the coverage floors
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(BIN)/python -m tests.coverage_floors)

build: $(STAMP)  ## strict build into site/
	$(BIN)/python -m mkdocs build --strict --clean -d site

zensical: $(STAMP)  ## build the site with Zensical instead, into site-zensical/
	$(BIN)/python -m sitebuild.zensical -d site-zensical

bench: $(STAMP)  ## benchmarks; they write docs/data/bench/*.json for the pages
	$(BIN)/python -m tests.bench $(BENCH)

mutate: $(STAMP)  ## mutation testing of snippets/ (mutmut); writes docs/data/bench/mutation/; MUTATE=chapter/module ARGS=--check
	nice -n 10 $(BIN)/python -m tests.mutation $(ARGS) $(MUTATE)

diagrams: $(STAMP)  ## draw new or changed Mermaid diagrams to SVG (needs Chromium); ARGS=--check
	$(BIN)/python -m sitebuild.diagrams $(ARGS)

lock:  ## re-resolve pyproject.toml's direct dependencies into requirements.txt
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))' > .venv-lock/direct.txt
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -r .venv-lock/direct.txt
	{ head -n 2 requirements.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | sort -f; } > requirements.new
	mv requirements.new requirements.txt && rm -rf .venv-lock

clean:
	rm -rf site .pytest_cache .hypothesis .coverage
