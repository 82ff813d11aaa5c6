"""The Course section's generated parts, on the built site and in Chromium.

Reading times, the patterns index and the glossary are computed at build time
from the pages and one data file; these tests check that what a reader sees is
what those sources say, and that the learning-path checklist keeps a reader's
progress in the browser.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup
from mkdocs.utils.meta import get_data

from sitebuild import course
from tests.site.pages import ROOT, soup_of

DOCS = ROOT / "docs"


def declared_patterns() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        if {"reference"} & set(path.parts):
            continue
        meta = get_data(path.read_text(encoding="utf-8"))[1] or {}
        found += [(p["name"], path.relative_to(DOCS).as_posix()) for p in meta.get("patterns") or []]
    return found


def test_reading_times_are_computed_not_typed(built_site: Path):
    source = (DOCS / "course" / "learning_path.md").read_text(encoding="utf-8")
    items = re.findall(r"^- \[ \] \[[^\]]+\]\(([^)]+)\) · (.*?) ·", source, re.MULTILINE)
    assert len(items) >= 20
    assert all(re.fullmatch(r"<!-- minutes: [\w/]+\.md -->", shown) for _, shown in items), (
        "a reading time is typed into the learning path instead of computed")
    soup = soup_of(built_site / "course" / "learning_path" / "index.html")
    shown = [span.get_text() for span in soup.select(".ed-checklist li .ed-minutes")]
    pages = re.findall(r"<!-- minutes: ([\w/]+\.md) -->", source)
    expected = [course._fmt(course.reading_minutes(page)) for page in pages]
    assert shown == expected


def test_collapsed_hints_and_answers_are_left_out_of_the_reading_time():
    """A reader opens them only when they want them: a question reads the same with or
    without its two blocks, and what follows the blocks still counts."""
    question = "1. Why does the order of two agents matter here?\n\n"
    blocks = ('    ??? tip "Hint"\n        Follow one entry.\n\n'
              '    ??? success "Answer"\n        Because the goal tracker counts first,\n'
              '        and the mood agent reads the count.\n\n')
    after = "2. Next question.\n\nA closing paragraph.\n"
    assert course.without_collapsed(question + blocks + after) == question + after
    assert course.without_collapsed('??? example "a file"\n    text\nkept\n') == "kept\n"


def test_a_long_page_reads_longer_than_a_short_one():
    assert course.reading_minutes("processing/event_handlers.md") > course.reading_minutes(
        "fundamentals/index.md")


def test_the_phase_totals_add_up_their_steps(built_site: Path):
    text = soup_of(built_site / "course" / "learning_path" / "index.html").get_text(" ")
    source = (DOCS / "course" / "learning_path.md").read_text(encoding="utf-8")
    for phase in re.split(r"(?m)^(?=## )", source)[1:]:
        pages = re.findall(r"<!-- minutes: ([\w/]+\.md) -->", phase)
        if "<!-- phase-minutes -->" in phase:
            total = course._fmt(sum(course.reading_minutes(p) for p in pages))
            assert f"{total} of reading" in text, (phase.splitlines()[0], total)


def test_the_patterns_index_lists_every_declared_pattern_once_in_order(built_site: Path):
    declared = declared_patterns()
    assert len(declared) >= 40
    soup = soup_of(built_site / "course" / "patterns" / "index.html")
    rows = soup.select("article table tbody tr")
    names = [row.select_one("td a").get_text() for row in rows]
    assert sorted(names, key=str.casefold) == names
    assert sorted(names) == sorted(name for name, _ in declared)
    for row, (name, page) in zip(rows, sorted(declared, key=lambda d: d[0].casefold())):
        href = row.select_one("td a")["href"]
        target = (built_site / "course" / "patterns" / href).resolve()
        assert (target / "index.html").is_file(), (name, href)
        assert target == (built_site / page.removesuffix(".md").removesuffix("index")).resolve()


def test_a_pattern_entry_without_a_summary_breaks_the_build(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "x").mkdir(parents=True)
    (docs / "x" / "page.md").write_text("---\npatterns:\n  - name: Lonely\n---\n# Page\n")
    monkeypatch.setattr(course, "DOCS", docs)
    with pytest.raises(Exception, match="needs name and summary"):
        course._patterns_index()


def test_the_glossary_defines_each_term_once_with_its_abbreviation(built_site: Path):
    entries = yaml.safe_load((DOCS / "data" / "glossary.yml").read_text(encoding="utf-8"))
    terms = [e["term"].casefold() for e in entries]
    assert len(terms) == len(set(terms)) >= 40
    soup = soup_of(built_site / "course" / "glossary" / "index.html")
    defined = [" ".join(dt.get_text().split()) for dt in soup.select("article dl dt")]
    assert len(defined) == len(entries)
    for entry in entries:
        label = entry["term"] + (f" ({entry['abbr']})" if entry.get("abbr") else "")
        assert label in defined, label


def test_a_term_defined_twice_breaks_the_build(tmp_path, monkeypatch):
    twice = tmp_path / "glossary.yml"
    twice.write_text("- {term: Saga, definition: a}\n- {term: saga, definition: b}\n")
    monkeypatch.setattr(course, "GLOSSARY", twice)
    with pytest.raises(Exception, match="defined twice"):
        course._glossary_entries()


class Prose(HTMLParser):
    """The ``<abbr>`` elements of a page's article (title, text) and its text outside code,
    abbreviations, scripts, styles and drawings, read in one pass of the stdlib parser (a
    tenth of the time of a BeautifulSoup tree over every page)."""

    SKIP = frozenset({"code", "pre", "abbr", "script", "style", "svg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.article = self.skipped = 0
        self.abbrs: list[tuple[str, str]] = []
        self.texts: list[str] = []
        self._abbr: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.article += tag == "article"
        if self.article and tag in self.SKIP:
            self.skipped += 1
            if tag == "abbr":
                self._abbr = [dict(attrs).get("title") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if self.article and tag in self.SKIP and self.skipped:
            self.skipped -= 1
            if tag == "abbr" and self._abbr is not None:
                self.abbrs.append((self._abbr[0], self._abbr[1]))
                self._abbr = None
        self.article -= tag == "article" and self.article > 0

    def handle_data(self, data: str) -> None:
        if self._abbr is not None:
            self._abbr[1] += data
        elif self.article and not self.skipped:
            self.texts.append(data)


def test_every_abbreviation_in_prose_carries_its_meaning_as_a_tooltip(built_site: Path):
    entries = {e["abbr"]: e for e in yaml.safe_load(
        (DOCS / "data" / "glossary.yml").read_text(encoding="utf-8")) if e.get("abbr")}
    word = re.compile(r"\b(" + "|".join(map(re.escape, entries)) + r")\b")
    marked, bare = 0, []
    for html in sorted(built_site.rglob("*.html")):
        prose = Prose()
        prose.feed(html.read_text(encoding="utf-8"))
        for title, text in prose.abbrs:
            if text in entries:
                assert title.startswith(entries[text]["term"]), (html, text, title)
                marked += 1
        bare += [f"{html.relative_to(built_site)}: {text.strip()[:60]}"
                 for text in prose.texts if word.search(text)]
    assert marked >= 20
    assert not bare, f"abbreviations without a tooltip: {bare[:5]}"


def test_the_prose_reader_skips_code_and_abbreviations_but_not_their_neighbours():
    prose = Prose()
    prose.feed('<p>CQRS out</p><article><p>An <abbr title="Command Query">CQRS</abbr> page, '
               'and CQRS bare, <code>CQRS</code> <pre><span>CQRS</span></pre>'
               '<svg><text>CQRS</text></svg> then DLQ.</p></article><p>after CQRS</p>')
    assert prose.abbrs == [("Command Query", "CQRS")]
    assert [t for t in prose.texts if "CQRS" in t or "DLQ" in t] == [" page, and CQRS bare, ",
                                                                     " then DLQ."]


def tick(box) -> None:
    """Tick a box the way a keyboard user does: focus it, press Space."""
    box.focus()
    box.page.keyboard.press("Space")


@pytest.mark.browser
def test_the_checklist_remembers_ticks_across_reloads_and_resets(page):
    page.goto("course/learning_path/")
    boxes = page.locator(".ed-checklist li.task-list-item input[type=checkbox]")
    assert boxes.count() >= 20
    assert boxes.first.is_enabled()
    progress = page.locator(".ed-checklist-progress")
    assert progress.inner_text().startswith("Your progress: 0 of ")
    tick(boxes.nth(0))
    tick(boxes.nth(2))
    assert progress.inner_text().startswith("Your progress: 2 of ")
    page.reload()
    boxes = page.locator(".ed-checklist li.task-list-item input[type=checkbox]")
    ticked = [boxes.nth(i).is_checked() for i in range(4)]
    assert ticked == [True, False, True, False]
    assert page.locator(".ed-checklist-progress").inner_text().startswith("Your progress: 2 of ")
    page.locator(".ed-checklist-reset").click()
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.reload()
    boxes = page.locator(".ed-checklist li.task-list-item input[type=checkbox]")
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))


@pytest.mark.browser
def test_a_corrupt_stored_checklist_does_not_break_the_page(page):
    page.goto("course/learning_path/")
    page.evaluate("localStorage.setItem('edd-checklist:learning-path', '{not json')")
    page.reload()
    assert page.locator(".ed-checklist-progress").inner_text().startswith("Your progress: 0 of ")
    tick(page.locator(".ed-checklist li.task-list-item input[type=checkbox]").first)
    assert page.locator(".ed-checklist-progress").inner_text().startswith("Your progress: 1 of ")


def test_the_course_directives_expand_where_they_stand():
    """In the build's own process: what the learning path, the patterns index and the
    glossary directives become (the site tests above read the built pages)."""
    one, two = (course.reading_minutes(p) for p in ("fundamentals/index.md", "cqrs/index.md"))
    page = ("Intro: <!-- course-minutes -->.\n\n## Phase 1\n\n"
            "- [ ] A · <!-- minutes: fundamentals/index.md --> · x\n"
            "- [ ] B · <!-- minutes: cqrs/index.md --> · y\n\nIn all <!-- phase-minutes -->.\n")
    expanded = course.expand(page)
    assert expanded.startswith(f"Intro: {course._fmt(one + two)}.")
    assert f'A · <span class="ed-minutes">{course._fmt(one)}</span> · x' in expanded
    assert f"In all {course._fmt(one + two)}." in expanded
    index = course.expand("<!-- patterns-index -->")
    names = [name for name, _ in declared_patterns()]
    assert index.startswith(f"{len(names)} patterns, from ")
    assert "| Pattern | What it is | Chapter | Tags |" in index
    assert all(f"[{name}](../" in index for name in names)
    glossary = course.expand("<!-- glossary -->")
    entries = yaml.safe_load((DOCS / "data" / "glossary.yml").read_text(encoding="utf-8"))
    assert all(f"\n:   {entry['definition'].strip()}" in "\n" + glossary for entry in entries)
    with pytest.raises(course.CourseError, match="no page docs/nowhere.md"):
        course.reading_minutes("nowhere.md")


def think_about_it(soup) -> list:
    """The questions of a page's "Think about it" section: the items of its list."""
    heading = soup.find("h2", id="think-about-it")
    if heading is None:
        return []
    questions = []
    for sibling in heading.find_next_siblings():
        if sibling.name == "h2":
            break
        if sibling.name == "ol":
            questions += sibling.find_all("li", recursive=False)
    return questions


def test_every_think_about_it_question_has_a_hint_and_a_model_answer_collapsed(
        built_site: Path):
    """Each question is followed by two closed <details>: a hint, then a model answer of
    at least 25 words (prose only: a code block would be Python typed into Markdown).
    Counts the questions without both, page by page."""
    pages = questions = 0
    missing: list[str] = []
    for html in sorted(built_site.rglob("index.html")):
        text = html.read_text(encoding="utf-8")
        start = text.find('<h2 id="think-about-it"')
        if start < 0:
            continue
        end = text.find("<h2", start + 1)
        found = think_about_it(BeautifulSoup(text[start:end if end > 0 else None], "html.parser"))
        pages += 1
        page = html.parent.relative_to(built_site).as_posix()
        for n, item in enumerate(found, 1):
            questions += 1
            blocks = item.find_all("details", recursive=False)
            kinds = [(d.get("class"), d.summary.get_text(strip=True) if d.summary else "",
                      d.has_attr("open")) for d in blocks]
            answer = blocks[1] if len(blocks) == 2 else None
            words = len(answer.get_text(" ", strip=True).split()) - 1 if answer else 0
            if (kinds != [(["tip"], "Hint", False), (["success"], "Answer", False)]
                    or words < 25 or (answer and answer.find("pre"))):
                missing.append(f"{page} question {n}")
    assert pages >= 45 and questions >= 200, (pages, questions)
    assert not missing, f"{len(missing)} of {questions} questions lack a hint or an answer:\n" \
        + "\n".join(missing)
