"""The Course section's numbers and lists, computed from the pages, never typed.

Directives (HTML comments, so a page still reads well unbuilt), rendered by the
``sitebuild.pages`` extension:

* ``<!-- minutes: fundamentals/core_concepts.md -->`` becomes that page's
  reading time, computed from its words and the lines of the code it
  includes. ``<!-- phase-minutes -->`` becomes the sum of the ``minutes``
  directives in the same ``##`` section, ``<!-- course-minutes -->`` the sum
  over the whole page.
* ``<!-- patterns-index -->`` becomes the A to Z table of every pattern that
  a page declares in its front matter (``patterns:`` with ``name``,
  ``summary`` and optional ``aka``, plus the page's ``tags``).
* ``<!-- glossary -->`` becomes the glossary, from ``docs/data/glossary.yml``.

The same glossary file yields the abbreviations appended to every page
(`abbreviations`), so each abbreviation is defined once and shows its meaning
as a tooltip wherever it appears. `search_keywords` says which words the
search index weighs as a page's tags.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import yaml

from sitebuild import examples, facts
from sitebuild.facts import CHAPTERS, DOCS, SNIPPETS

GLOSSARY = DOCS / "data" / "glossary.yml"


class CourseError(ValueError):
    """A course directive or declaration the build cannot honour."""


def front_matter(text: str) -> tuple[str, dict]:
    """A page's text without its YAML front matter, and the front matter."""
    found = re.match(r"\A---\n(.*?\n)---[ \t]*\n", text, re.DOTALL)
    if not found:
        return text, {}
    return text[found.end():], yaml.safe_load(found[1]) or {}

#: Reading speed for prose and for code, in words and lines per minute.
WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 30

MINUTES = re.compile(r"<!-- minutes: (?P<page>[\w/]+\.md) -->")
PHASE = "<!-- phase-minutes -->"
TOTAL = "<!-- course-minutes -->"
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

def _included_code(path: str, section: str | None) -> str:
    source = (SNIPPETS / path).read_text(encoding="utf-8")
    if section:
        source = facts.section(source, section) or ""
    return facts.as_shown(source)


COLLAPSED = re.compile(r"^(?P<indent> *)\?\?\? .*\n(?:(?:(?P=indent) {4}.*)?\n)*", re.MULTILINE)


def without_collapsed(text: str) -> str:
    """``text`` less its collapsed blocks (``??? kind "title"`` and what is indented under
    it): the hints and answers a reader opens only when they want them."""
    return COLLAPSED.sub("", text)


def reading_minutes(page: str) -> int:
    """Minutes to read ``docs/<page>``: prose words plus included code lines, leaving out
    collapsed blocks (hints and answers)."""
    path = DOCS / page
    if not path.is_file():
        raise CourseError(f"minutes: no page docs/{page}")
    text, _ = front_matter(path.read_text(encoding="utf-8"))
    includes = {(e.module, e.section) for e in examples.parse(text) if e.kind != "output"}
    text = without_collapsed(text)
    whole = {path for path, section in includes if section is None}
    # An excerpt of a module that the page also shows whole is read once.
    code_lines = sum(len(_included_code(path, section).strip().splitlines())
                     for path, section in includes if section is None or path not in whole)
    prose = COMMENT.sub(" ", text)
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
    return front_matter(path.read_text(encoding="utf-8"))[1]


def _patterns_index() -> str:
    rows = []
    for path in sorted(DOCS.rglob("*.md")):
        relative = path.relative_to(DOCS).as_posix()
        if relative.startswith(("_", "course/patterns", "reference/")):
            continue
        meta = _front_matter(path)
        for tag in meta.get("tags") or []:
            # Material's search weighs tags a million times the text: a tag such as
            # `event_sourcing` would put this page first for every query with "event".
            if tag in CHAPTERS or "event" in str(tag).lower():
                raise CourseError(f"{relative}: tag {tag!r} is a chapter name or contains "
                                  "'event'; search would rank this page first for it")
        for pattern in meta.get("patterns") or []:
            if not isinstance(pattern, dict) or not {"name", "summary"} <= pattern.keys():
                raise CourseError(f"{relative}: each patterns entry needs name and summary")
            chapter = relative.split("/")[0] if "/" in relative else "home"
            rows.append((pattern["name"], pattern, relative, chapter, meta.get("tags") or []))
    if not rows:
        raise CourseError("patterns-index: no page declares patterns in its front matter")
    rows.sort(key=lambda row: row[0].casefold())
    lines = ["| Pattern | What it is | Chapter | Tags |", "|---|---|---|---|"]
    letter = ""
    for name, pattern, relative, chapter, tags in rows:
        first = name[0].upper()
        anchor = f'<span id="{first.lower()}"></span>' if first != letter else ""
        letter = first
        aka = pattern.get("aka") or []
        also = f" <br><small>Also called: {', '.join(aka)}</small>" if aka else ""
        chapter_title = CHAPTERS.get(chapter, chapter.replace("_", " ").title())
        lines.append(f"| {anchor}[{name}](../{relative}) | {pattern['summary']}{also} | "
                     f"{chapter_title} | {', '.join(f'`{t}`' for t in tags)} |")
    letters = sorted({row[0][0].upper() for row in rows})
    jump = " · ".join(f"[{c}](#{c.lower()})" for c in letters)
    return f"{len(rows)} patterns, from {len({r[2] for r in rows})} pages. Jump to: {jump}\n\n" \
        + "\n".join(lines)


def _glossary_entries() -> tuple[dict, ...]:
    """The glossary's entries, sorted; parsed once per version of the file (every page and
    every docstring the code reference renders asks for them)."""
    return _parse_glossary(GLOSSARY.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=4)
def _parse_glossary(text: str) -> tuple[dict, ...]:
    entries = yaml.safe_load(text)
    seen: set[str] = set()
    for entry in entries:
        key = entry["term"].casefold()
        if key in seen:
            raise CourseError(f"glossary: {entry['term']} is defined twice")
        seen.add(key)
    return tuple(sorted(entries, key=lambda e: e["term"].casefold()))


def _glossary() -> str:
    out = []
    for entry in _glossary_entries():
        abbr = f" ({entry['abbr']})" if entry.get("abbr") else ""
        see = f" See [{entry['see_title']}](../{entry['see']})." if entry.get("see") else ""
        out.append(f"{entry['term']}{abbr}\n:   {entry['definition'].strip()}{see}\n")
    return "\n".join(out)


def abbreviations() -> str:
    """The abbreviation definitions of the glossary, for ``abbr`` at the end of every page."""
    return "\n".join(f"*[{entry['abbr']}]: {entry['term']}: {entry['short'].strip()}"
                     for entry in _glossary_entries() if entry.get("abbr"))


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


def expand(markdown: str) -> str:
    """Expand the course directives of a page."""
    if MINUTES.search(markdown):
        markdown = _learning_path(markdown)
    if "<!-- patterns-index -->" in markdown:
        markdown = markdown.replace("<!-- patterns-index -->", _patterns_index())
    if "<!-- glossary -->" in markdown:
        markdown = markdown.replace("<!-- glossary -->", _glossary())
    return markdown
