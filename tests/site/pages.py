"""Read the built site the way a reader sees it: pages, code blocks, output blocks."""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "snippets"
# The code blocks of a page's content, each of which the theme gives a copy button.
CODE_BLOCKS = "[data-md-component='content'] pre:not(.mermaid) > code"
# A style that makes the browser lay out every code block, which extra.css lets it
# skip while far from view: for checks that read what is laid out (axe, heights).
LAY_OUT_ALL_CODE = ".md-typeset pre > code { content-visibility: visible !important; }"


def hook(name: str):
    """Import one of the site's build hooks, ``docs/_hooks/<name>.py``, as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_hook", ROOT / "docs" / "_hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
SECTION_MARKER = re.compile(r"^\s*#\s*-{1,}8<-{1,}\s+\[(start|end):[\w-]+\]\s*$")
PYTHON_LANGS = {"python", "py", "pycon", "python3", "py3"}


@dataclass(frozen=True)
class CodeBlock:
    page: str
    language: str
    title: str
    text: str

    @property
    def is_excerpt(self) -> bool:
        return "excerpt" in self.title.lower()


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


@functools.lru_cache(maxsize=None)
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
                                title.get_text() if title else "", code_text(code)))
    return blocks


def module_as_shown(path: Path) -> str:
    """A snippet module as a whole-file include shows it: section markers removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not SECTION_MARKER.match(line)).rstrip("\n")


def snippet_modules() -> list[Path]:
    return sorted(p for p in SNIPPETS.glob("*/*.py") if p.name != "__init__.py")


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
