"""Read the built site the way a reader sees it: pages, code blocks, output blocks."""

from __future__ import annotations

import functools
import html
import json
import re
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


def source_pages() -> list[str]:
    """Every page the build will make, as a URL path, from the sources (before any
    build: sweeps are parametrized with it, one test per page). A test compares it
    with the pages of the build."""
    urls = set()
    for page in facts.DOCS.rglob("*.md"):
        relative = page.relative_to(facts.DOCS)
        if relative.parts[0] in {"data", "assets", "examples", "reference"}:
            continue
        stem = relative.with_suffix("").as_posix()
        if stem == "index":
            urls.add("")
        elif stem.endswith("/index"):
            urls.add(stem.removesuffix("index"))
        else:
            urls.add(stem + "/")
    urls |= {"reference/"} | {f"reference/{chapter}/" for chapter in facts.CHAPTERS}
    return sorted(urls)


PAGES = source_pages()


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


TAG = re.compile(r"<(?P<name>[a-zA-Z][\w-]*)(?P<attrs>(?:\s+[^\s=>/\"']+"
                 r"(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*/?>")
ATTR = re.compile(r"([^\s=>/\"']+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?</script>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Tag:
    """A start tag of a built page: its name and attributes (values unescaped)."""

    name: str
    attrs: dict[str, str]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


def tags_of(path: Path) -> list[Tag]:
    """Every start tag of a built page, in order, read with regular expressions: a tenth
    of a second where BeautifulSoup takes seconds per large page. Code is escaped in the
    HTML and script bodies are skipped, so every match is a real tag."""
    stat = path.stat()
    return _tags(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _tags(path: Path, mtime_ns: int, size: int) -> list[Tag]:
    text = SCRIPT_BODY.sub(r"\1</script>", path.read_text(encoding="utf-8"))
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    found = []
    for match in TAG.finditer(text):
        attrs = {m[1].lower(): html.unescape(next((v for v in m.groups()[1:] if v is not None), ""))
                 for m in ATTR.finditer(match["attrs"])}
        found.append(Tag(match["name"].lower(), attrs))
    return found


def code_text(code) -> str:
    """The text of a code block, as its copy button copies it (less console prompts)."""
    return code.get_text().rstrip("\n")


HIGHLIGHT = re.compile(r'<div class="(?:language-(?P<language>[\w-]+) )?highlight"(?P<attrs>[^>]*)>'
                       r'(?:<span class="filename">(?P<title>[^<]*)</span>)?<pre[^>]*>.*?<code[^>]*>'
                       r"(?P<code>.*?)</code></pre>", re.DOTALL)


def code_blocks(site: Path, page: Path) -> list[CodeBlock]:
    """Every highlighted block of a built page, with the text a reader sees (read with a
    regular expression: BeautifulSoup takes seconds per long page)."""
    blocks = []
    for match in HIGHLIGHT.finditer(page.read_text(encoding="utf-8")):
        attrs = dict(re.findall(r'(data-example(?:-kind)?)="([^"]*)"', match["attrs"]))
        text = html.unescape(re.sub(r"<[^>]+>", "", match["code"])).rstrip("\n")
        blocks.append(CodeBlock(str(page.relative_to(site)), match["language"] or "",
                                html.unescape(match["title"] or ""), text,
                                attrs.get("data-example", ""), attrs.get("data-example-kind", "")))
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
