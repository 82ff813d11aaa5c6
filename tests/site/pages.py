"""Read the built site the way a reader sees it: pages, code blocks, output blocks."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

from sitebuild import facts

ROOT = facts.ROOT
SNIPPETS = facts.SNIPPETS
# The code blocks of a page's content, each of which the theme gives a copy button.
CODE_BLOCKS = "[data-md-component='content'] pre:not(.mermaid) > code"
# A style that makes the browser lay out every code block, which extra.css lets it
# skip while far from view: for checks that read what is laid out (axe, heights).
LAY_OUT_ALL_CODE = ".md-typeset pre > code { content-visibility: visible !important; }"


PYTHON_LANGS = {"python", "py", "pycon", "python3", "py3"}


@dataclass(frozen=True)
class CodeBlock:
    page: str
    language: str
    title: str
    text: str
    module: str = ""  # chapter/module.py of an example block (data-example), else ""
    kind: str = ""  # "whole" or "excerpt" for an example block

    @property
    def is_excerpt(self) -> bool:
        return self.kind == "excerpt"


def examples(site: Path) -> list[dict]:
    """The build's list of every example block (``examples.json``, sitebuild.manifest)."""
    return json.loads((site / "examples.json").read_text(encoding="utf-8"))


def html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def url_path(site: Path, page: Path) -> str:
    """The URL path, relative to the site's root, of a built ``.../index.html``."""
    return "" if page.parent == site else f"{page.parent.relative_to(site).as_posix()}/"


def site_pages(site: Path) -> list[str]:
    """Every page of the build as a URL path, found in the build, not listed by hand."""
    return sorted(url_path(site, p) for p in site.rglob("index.html"))


def soup_of(path: Path) -> BeautifulSoup:
    """The parsed page, parsed once per session (the site is ~20 MB of HTML and
    several checks read all of it). Treat it as read-only."""
    stat = path.stat()
    return _soup(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _soup(path: Path, mtime_ns: int, size: int) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def code_text(code) -> str:
    """The text of a code block, as its copy button copies it (less console prompts)."""
    return code.get_text().rstrip("\n")


def code_blocks(site: Path, page: Path) -> list[CodeBlock]:
    blocks = []
    for block in soup_of(page).select("div.highlight"):
        language = next((c.removeprefix("language-") for c in block.get("class", [])
                         if c.startswith("language-")), "")
        title = block.select_one(".filename")
        code = block.select_one("pre > code")
        if code is None:
            continue
        blocks.append(CodeBlock(str(page.relative_to(site)), language,
                                title.get_text() if title else "", code_text(code),
                                block.get("data-example", ""), block.get("data-example-kind", "")))
    return blocks


def module_as_shown(path: Path) -> str:
    """A snippet module as its whole-module block shows it: section markers left out."""
    return facts.as_shown(path.read_text(encoding="utf-8"))


snippet_modules = facts.modules


def contains_dedented(module: str, excerpt: str) -> bool:
    """Is ``excerpt`` a run of ``module``'s lines, dedented by one common indent?"""
    want = excerpt.splitlines()
    have = module.splitlines()
    if not want:
        return False
    for start, line in enumerate(have):
        indent = len(line) - len(line.lstrip())
        if line[indent:] != want[0] or start + len(want) > len(have):
            continue
        window = have[start:start + len(want)]
        if all(w == (h[indent:] if h.strip() else "") or (not w and not h.strip())
               for w, h in zip(want, window)):
            return True
    return False
