"""The contract, checked on the sources: no typed Python, mirrored names, runnable mains."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from sitebuild import examples
from tests.site.pages import PYTHON_LANGS, ROOT, snippet_modules

DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*\{?\.?(?P<lang>[\w+-]*)")
INCLUDE = re.compile(r'^\s*-{1,}8<-{1,}\s+"[^"]+"\s*$')
MODULES = snippet_modules()
PAGES = sorted(p for p in DOCS.rglob("*.md") if not {"reference"} & set(p.parts))
SHOWN_WHOLE = {e.module for page in PAGES for e in examples.parse(page.read_text(encoding="utf-8"))
               if e.kind == "whole"}


def fences(text: str):
    """Yield (language, first line number, body lines) for each fenced block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start, body = match["fence"], i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        yield match["lang"].lower(), start, body
        i += 1


def test_the_sources_are_found():
    assert len(PAGES) >= 5 and len(MODULES) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_no_python_is_typed_into_markdown(page: Path):
    """Python reaches a page only through <!-- example: ... -->, never a fence."""
    for language, line, body in fences(page.read_text(encoding="utf-8")):
        assert language not in PYTHON_LANGS, (
            f"{page.name}:{line}: a Python fence; show a module with <!-- example: ... -->")
        assert not any(INCLUDE.match(b) for b in body), f"{page.name}:{line}: --8<-- include"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_has_its_mirrored_test_and_page(module: Path):
    chapter = module.parent.name
    test = ROOT / "tests" / chapter / f"test_{module.name}"
    assert test.is_file(), f"no test file {test.relative_to(ROOT)}"
    tree = ast.parse(test.read_text(encoding="utf-8"))
    dotted = f"snippets.{chapter}.{module.stem}"
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert dotted in imported, f"{test.name} does not import {dotted}"
    pages = [p.stem for p in (DOCS / chapter).glob("*.md") if p.stem != "index"]
    assert any(module.stem == p or module.stem.startswith(p + "_") for p in pages), (
        f"no page docs/{chapter}/<topic>.md whose topic prefixes {module.stem}")


@pytest.mark.parametrize("module", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_is_shown_on_a_page_and_has_a_main(module: Path):
    relative = f"{module.parent.name}/{module.name}"
    assert relative in SHOWN_WHOLE, f"snippets/{relative} is not shown whole by any page"
    tree = ast.parse(module.read_text(encoding="utf-8"))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert "main" in functions, f"{relative} has no main() to demonstrate it"
    assert ast.get_docstring(tree), f"{relative} has no module docstring"


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent != DOCS],
                         ids=lambda p: str(p.relative_to(DOCS)))
def test_every_page_has_a_description_for_search_engines_and_previews(page: Path):
    text = page.read_text(encoding="utf-8")
    assert re.match(r"---\n(.*\n)*?description: \S.{40,}\n(.*\n)*?---\n", text), (
        f"{page.name} lacks a front-matter description of at least 40 characters")


def test_hypothesis_runs_without_deadlines_under_one_profile():
    """A timing deadline fails correct examples on a loaded machine (a full run once
    failed on DeadlineExceeded): tests/conftest.py loads one profile without it."""
    from hypothesis import HealthCheck, settings

    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    set_deadline = re.compile(r"settings\([^)]*\bdeadline\s*=\s*(?!None\b)", re.DOTALL)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("*.py")
                 if set_deadline.search(path.read_text())]
    assert not offenders, f"a Hypothesis deadline is set in {offenders}"
