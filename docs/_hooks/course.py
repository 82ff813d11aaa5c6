"""MkDocs hooks for the Course section: numbers and lists computed, never typed.

Page directives (HTML comments, so a page still reads well unbuilt):

* ``<!-- minutes: fundamentals/core_concepts.md -->`` becomes that page's
  reading time, computed from its words and the lines of the code it
  includes. ``<!-- phase-minutes -->`` becomes the sum of the ``minutes``
  directives in the same ``##`` section, ``<!-- course-minutes -->`` the sum
  over the whole page.
* ``<!-- patterns-index -->`` becomes the A to Z table of every pattern that
  a page declares in its front matter (``patterns:`` with ``name``,
  ``summary`` and optional ``aka``, plus the page's ``tags``).
* ``<!-- glossary -->`` becomes the glossary, from ``docs/data/glossary.yml``.

The same glossary file yields the abbreviations that ``abbr`` appends to
every page, so each abbreviation is defined once and shows its meaning as a
tooltip wherever it appears.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.utils.meta import get_data

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
GLOSSARY = DOCS / "data" / "glossary.yml"

#: Reading speed for prose and for code, in words and lines per minute.
WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 30

CHAPTERS = {p.name for p in DOCS.iterdir() if (p / "index.md").is_file()}

MINUTES = re.compile(r"<!-- minutes: (?P<page>[\w/]+\.md) -->")
PHASE = "<!-- phase-minutes -->"
TOTAL = "<!-- course-minutes -->"
INCLUDE = re.compile(r'^\s*--8<-- "(?P<path>[\w/]+\.py)(?::(?P<section>\w+))?"\s*$', re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
SECTION = re.compile(r"# --8<-- \[(start|end):(\w+)\]")

_titles: dict[str, str] = {}


def _included_code(path: str, section: str | None) -> str:
    source = (SNIPPETS / path).read_text(encoding="utf-8")
    if section:
        match = re.search(rf"# --8<-- \[start:{section}\]\n(.*?)# --8<-- \[end:{section}\]",
                          source, re.S)
        source = match.group(1) if match else ""
    return SECTION.sub("", source)


def reading_minutes(page: str) -> int:
    """Minutes to read ``docs/<page>``: prose words plus included code lines."""
    path = DOCS / page
    if not path.is_file():
        raise PluginError(f"minutes: no page docs/{page}")
    text, _ = get_data(path.read_text(encoding="utf-8"))
    includes = {(m["path"], m["section"]) for m in INCLUDE.finditer(text)}
    whole = {path for path, section in includes if section is None}
    # An excerpt of a module that the page also shows whole is read once.
    code_lines = sum(len(_included_code(path, section).strip().splitlines())
                     for path, section in includes if section is None or path not in whole)
    prose = COMMENT.sub(" ", INCLUDE.sub(" ", text))
    words = len(re.findall(r"[A-Za-z0-9][\w'’-]*", prose))
    return max(1, math.ceil(words / WORDS_PER_MINUTE + code_lines / CODE_LINES_PER_MINUTE))


def _fmt(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours else f"{minutes} min"


def _learning_path(markdown: str) -> str:
    sections = re.split(r"(?m)^(?=## )", markdown)
    total = 0
    out = []
    for section in sections:
        phase = 0

        def one(match: re.Match[str]) -> str:
            nonlocal phase
            minutes = reading_minutes(match["page"])
            phase += minutes
            return f"<span class=\"ed-minutes\">{_fmt(minutes)}</span>"

        section = MINUTES.sub(one, section)
        total += phase
        out.append(section.replace(PHASE, _fmt(phase)))
    return "".join(out).replace(TOTAL, _fmt(total))


def _front_matter(path: Path) -> dict:
    return get_data(path.read_text(encoding="utf-8"))[1] or {}


def _patterns_index() -> str:
    rows = []
    for path in sorted(DOCS.rglob("*.md")):
        relative = path.relative_to(DOCS).as_posix()
        if relative.startswith(("_", "course/patterns")):
            continue
        meta = _front_matter(path)
        for tag in meta.get("tags") or []:
            # Material's search weighs tags a million times the text: a tag such as
            # `event_sourcing` would put this page first for every query with "event".
            if tag in CHAPTERS or "event" in str(tag).lower():
                raise PluginError(f"{relative}: tag {tag!r} is a chapter name or contains "
                                  "'event'; search would rank this page first for it")
        for pattern in meta.get("patterns") or []:
            if not isinstance(pattern, dict) or not {"name", "summary"} <= pattern.keys():
                raise PluginError(f"{relative}: each patterns entry needs name and summary")
            chapter = relative.split("/")[0] if "/" in relative else "home"
            rows.append((pattern["name"], pattern, relative, chapter, meta.get("tags") or []))
    if not rows:
        raise PluginError("patterns-index: no page declares patterns in its front matter")
    rows.sort(key=lambda row: row[0].casefold())
    lines = ["| Pattern | What it is | Chapter | Tags |", "|---|---|---|---|"]
    letter = ""
    for name, pattern, relative, chapter, tags in rows:
        first = name[0].upper()
        anchor = f'<span id="{first.lower()}"></span>' if first != letter else ""
        letter = first
        aka = pattern.get("aka") or []
        also = f" <br><small>Also called: {', '.join(aka)}</small>" if aka else ""
        chapter_title = _titles.get(chapter, chapter.replace("_", " ").title())
        lines.append(f"| {anchor}[{name}](../{relative}) | {pattern['summary']}{also} | "
                     f"{chapter_title} | {', '.join(f'`{t}`' for t in tags)} |")
    letters = sorted({row[0][0].upper() for row in rows})
    jump = " · ".join(f"[{c}](#{c.lower()})" for c in letters)
    return f"{len(rows)} patterns, from {len({r[2] for r in rows})} pages. Jump to: {jump}\n\n" \
        + "\n".join(lines)


def _glossary_entries() -> list[dict]:
    entries = yaml.safe_load(GLOSSARY.read_text(encoding="utf-8"))
    seen: set[str] = set()
    for entry in entries:
        key = entry["term"].casefold()
        if key in seen:
            raise PluginError(f"glossary: {entry['term']} is defined twice")
        seen.add(key)
    return sorted(entries, key=lambda e: e["term"].casefold())


def _glossary() -> str:
    out = []
    for entry in _glossary_entries():
        abbr = f" ({entry['abbr']})" if entry.get("abbr") else ""
        see = f" See [{entry['see_title']}](../{entry['see']})." if entry.get("see") else ""
        out.append(f"{entry['term']}{abbr}\n:   {entry['definition'].strip()}{see}\n")
    return "\n".join(out)


def on_config(config):
    """Write the site-wide abbreviations from the glossary and append them to every page."""
    lines = []
    for entry in _glossary_entries():
        if entry.get("abbr"):
            lines.append(f"*[{entry['abbr']}]: {entry['term']}: {entry['short'].strip()}")
    folder = Path(tempfile.mkdtemp(prefix="edd-abbr-"))
    (folder / "abbreviations.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    snippets = config["mdx_configs"].setdefault("pymdownx.snippets", {})
    snippets["base_path"] = [*snippets.get("base_path", []), str(folder)]
    snippets["auto_append"] = [*snippets.get("auto_append", []), "abbreviations.md"]
    return config


def on_nav(nav, config, files):
    """Remember each chapter's title for the patterns index."""
    for item in nav.items:
        if item.is_section:
            for child in item.children:
                if child.is_page and child.file.src_uri.endswith("/index.md"):
                    _titles[child.file.src_uri.split("/")[0]] = item.title
    return nav


def search_keywords(meta: dict) -> list[str]:
    """The words the search index weighs as tags for a page.

    Its tags, the names and other names of the patterns it teaches, and its
    ``search_terms`` (synonyms and the misspellings readers really type, such
    as "idempotancy"), which appear nowhere else on the page.
    """
    words = [str(t) for t in meta.get("tags") or []]
    for pattern in meta.get("patterns") or []:
        words += [pattern["name"], *pattern.get("aka", [])]
    words += [str(t) for t in meta.get("search_terms") or []]
    return list(dict.fromkeys(words))


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Expand the course directives, and hand the search index its keywords."""
    keywords = search_keywords(page.meta)
    if keywords:
        page.meta["tags"] = keywords
    if MINUTES.search(markdown):
        markdown = _learning_path(markdown)
    if "<!-- patterns-index -->" in markdown:
        markdown = markdown.replace("<!-- patterns-index -->", _patterns_index())
    if "<!-- glossary -->" in markdown:
        markdown = markdown.replace("<!-- glossary -->", _glossary())
    return markdown
