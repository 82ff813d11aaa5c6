"""The contract, checked on the built HTML: what a reader copies runs, what a page
shows was printed by the code, every link resolves, and nothing loads from elsewhere."""

from __future__ import annotations

import html
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from tests.conftest import run_as_reader
from tests.engines import ENGINE_VARS
from tests.site.pages import (
    ROOT,
    SNIPPETS,
    CodeBlock,
    code_blocks,
    contains_dedented,
    examples,
    html_pages,
    module_as_shown,
    tags_of,
)

RECORDED = ROOT / "docs" / "data" / "outputs"
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def blocks(built_site) -> list[CodeBlock]:
    """Every Python block of the built site, parsed once."""
    return [b for page in html_pages(built_site) for b in code_blocks(built_site, page)
            if b.language in {"python", "py", "pycon"}]


def needs_engine(text: str) -> tuple[str, ...]:
    """The engine variables a program reads (empty for stdlib-only programs)."""
    return tuple(name for name in ENGINE_VARS if name in text)


def test_the_site_has_python_blocks_to_check(blocks):
    assert len(blocks) >= 8


def test_every_python_block_is_an_example_and_the_manifest_lists_each(blocks, built_site):
    """Python reaches a page only through the example directive, which marks the block
    with its module and kind; examples.json lists exactly those blocks."""
    loose = [f"{b.page} [{b.title}]" for b in blocks if not b.module or b.kind not in {"whole", "excerpt"}]
    assert not loose, f"Python blocks that are not examples: {loose}"
    listed = sorted((e["page"], e["module"], e["kind"]) for e in examples(built_site))
    shown = sorted((b.page.removesuffix("index.html"), b.module, b.kind) for b in blocks)
    assert listed == shown


def test_every_whole_python_block_is_the_full_text_of_its_module(blocks):
    assert sum(not b.is_excerpt for b in blocks) >= 20
    for block in blocks:
        if not block.is_excerpt:
            assert block.title == Path(block.module).name, block
            assert block.text == module_as_shown(SNIPPETS / block.module), (
                f"{block.page} [{block.title}]: not the full text of snippets/{block.module}")


def test_every_whole_stdlib_block_runs_as_pasted(blocks):
    whole = [b for b in blocks if not b.is_excerpt and not needs_engine(b.text)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run_as_reader, [b.text for b in whole]))
    for block, done in zip(whole, results):
        assert done.returncode == 0, (
            f"{block.page} [{block.title}] fails when pasted:\n{done.stderr[-2000:]}")


# One run per engine-backed program and session: the copy-paste check and the
# recorded-output check below would otherwise start the same program twice.
_engine_runs: dict[str, subprocess.CompletedProcess[str]] = {}


def run_against_fresh_engines(text: str, fresh_engine_env) -> subprocess.CompletedProcess[str]:
    if text not in _engine_runs:
        _engine_runs[text] = run_as_reader(text, fresh_engine_env(needs_engine(text)))
    return _engine_runs[text]


def test_every_whole_engine_block_runs_as_pasted_against_real_engines(blocks, fresh_engine_env):
    """Three at a time: each has engines of its own (new Redis, NATS and Tansu processes,
    a new PostgreSQL database, a new RabbitMQ virtual host), and mostly waits on them."""
    whole = {b.text: b for b in blocks if not b.is_excerpt and needs_engine(b.text)}
    assert len(whole) >= 10
    pending = [text for text in whole if text not in _engine_runs]
    envs = [fresh_engine_env(needs_engine(text)) for text in pending]
    with ThreadPoolExecutor(max_workers=3) as pool:
        _engine_runs.update(zip(pending, pool.map(run_as_reader, pending, envs)))
    for text, block in whole.items():
        done = _engine_runs[text]
        assert done.returncode == 0, (
            f"{block.page} [{block.title}] fails when pasted:\n{done.stderr[-2000:]}")


def test_every_excerpt_is_labelled_and_found_in_its_module_shown_in_full_on_its_page(blocks):
    excerpts = [b for b in blocks if b.is_excerpt]
    assert len(excerpts) >= 20, "expected excerpts on the site"
    full: dict[tuple[str, str], str] = {(b.page, b.module): b.text for b in blocks
                                        if not b.is_excerpt}
    for block in excerpts:
        assert block.title.startswith(f"{Path(block.module).name} (excerpt: "), block.title
        shown = full.get((block.page, block.module))
        assert shown is not None, f"{block.page}: excerpt of {block.module}, not shown whole there"
        assert contains_dedented(shown, block.text), (
            f"{block.page} [{block.title}]: excerpt not found verbatim in {block.module}")


OUTPUT = re.compile(r'<div class="ed-output(?P<recorded> ed-recorded)?" data-snippet="(?P<module>[^"]+)">'
                    r"\s*(?P<block><div class=\"language-text highlight\".*?</pre>)", re.DOTALL)


def output_blocks(site: Path, recorded: bool):
    """(page, module, text) of each output block of the site: run at build time, or recorded."""
    for page in html_pages(site):
        for match in OUTPUT.finditer(page.read_text(encoding="utf-8")):
            if bool(match["recorded"]) == recorded:
                code = re.search(r"<code[^>]*>(.*)</code>", match["block"], re.DOTALL)[1]
                yield (page.relative_to(site), match["module"],
                       html.unescape(re.sub(r"<[^>]+>", "", code)).rstrip("\n"))


def test_every_output_shown_is_what_the_module_prints_now(built_site):
    """Run as shown on the page (section markers are comments): the copy-paste check
    above has usually run the same text already, and its result is reused."""
    shown = list(output_blocks(built_site, recorded=False))
    assert len(shown) >= 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(run_as_reader, [module_as_shown(SNIPPETS / r) for _, r, _ in shown]))
    for (page, relative, text), done in zip(shown, runs):
        assert done.returncode == 0, done.stderr
        assert text == done.stdout.rstrip("\n"), f"{page}: output of {relative} is stale"


def test_every_recorded_output_is_what_the_module_prints_against_real_engines(
        built_site, fresh_engine_env):
    """Engine-backed examples cannot run during the build; their output is recorded in
    docs/data/outputs/ and must equal what they print now (EDD_RECORD=1 rewrites it)."""
    for page, relative, text in output_blocks(built_site, recorded=True):
        done = run_against_fresh_engines(module_as_shown(SNIPPETS / relative), fresh_engine_env)
        assert done.returncode == 0, f"{relative} failed:\n{done.stderr[-2000:]}"
        if os.environ.get("EDD_RECORD"):
            (RECORDED / relative.replace(".py", ".txt")).write_text(done.stdout)
            continue
        assert text == done.stdout.rstrip("\n"), (
            f"{page}: recorded output of {relative} is stale; re-record with EDD_RECORD=1")


def test_every_internal_link_and_anchor_resolves(built_site):
    checked, broken = broken_links(built_site)
    assert checked >= 1000
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        '<p id="top"><a href="a/">ok</a> <a href="a/#here">ok</a> <a href="#top">ok</a> '
        '<a href="b/">gone</a> <a href="a/#nowhere">no anchor</a> <a href="https://x.org/">out</a>'
        '<script>const s = "<a href=\'missing/\'>";</script>'
        '<pre><code>&lt;a href="not-a-link/"&gt;</code></pre></p>')
    (tmp_path / "a" / "index.html").write_text('<h2 id="here">Here</h2>')
    assert broken_links(tmp_path) == (5, ["index.html: b/ (no such file)",
                                          "index.html: a/#nowhere (no such anchor)"])


def broken_links(site: Path) -> tuple[int, list[str]]:
    """How many internal links the site's pages have, and those that lead nowhere."""
    built_site = site
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            ids[path] = {tag.attrs["id"] for tag in tags_of(path) if "id" in tag.attrs} | {
                tag.attrs["name"] for tag in tags_of(path) if tag.name == "a" and "name" in tag.attrs}
        return ids[path]

    broken = []
    checked = 0
    for page in html_pages(built_site):
        for link in (tag for tag in tags_of(page) if tag.name == "a" and "href" in tag.attrs):
            href = link.attrs["href"]
            if EXTERNAL.match(href) or href.startswith(("mailto:", "javascript:")):
                continue
            checked += 1
            target, fragment = urldefrag(href)
            path = urlsplit(target).path
            base = built_site if path.startswith("/") else page.parent  # 404.html is root-absolute
            resolved = (base / unquote(path).lstrip("/")).resolve() if path else page
            if resolved.is_dir() or path.endswith("/"):
                resolved = resolved / "index.html"
            if not resolved.exists():
                broken.append(f"{page.relative_to(built_site)}: {href} (no such file)")
            elif fragment and resolved.suffix == ".html" and unquote(fragment) not in anchors(resolved):
                broken.append(f"{page.relative_to(built_site)}: {href} (no such anchor)")
    return checked, broken


def test_no_page_loads_anything_from_another_origin(built_site):
    loads = {"script": "src", "img": "src", "iframe": "src", "source": "src",
             "audio": "src", "video": "src", "embed": "src", "object": "data"}
    found = []
    for page in html_pages(built_site):
        for tag in tags_of(page):
            attr = loads.get(tag.name)
            if attr and EXTERNAL.match(tag.attrs.get(attr, "")):
                found.append(f"{page.name}: <{tag.name} {tag.attrs[attr]}>")
            if (tag.name == "link" and EXTERNAL.match(tag.attrs.get("href", ""))
                    and "canonical" not in tag.attrs.get("rel", "").split()):
                found.append(f"{page.name}: <link {tag.attrs['href']}>")
    for css in built_site.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        found += [f"{css.name}: {m}" for m in re.findall(r"(?:url\(|@import)\s*['\"]?(?:https?:)?//[^)'\"]+", text)]
    assert not found, "\n".join(found)


def test_every_table_header_cell_has_a_name(built_site):
    """A screen reader announces a cell by its column's header; an empty corner cell
    ("| | A | B |") leaves the first column unnamed (axe: empty-table-header)."""
    empty = [f"{page.relative_to(built_site)}: {cell[:120]}"
             for page in html_pages(built_site)
             for cell in re.findall(r"<th\b[^>]*>.*?</th>", page.read_text(encoding="utf-8"), re.DOTALL)
             if not re.sub(r"<[^>]+>|&nbsp;|\s", "", cell) and "aria-label" not in cell]
    assert sum(page.read_text(encoding="utf-8").count("<th") for page in html_pages(built_site)) >= 200
    assert not empty, "tables with an empty header cell:\n" + "\n".join(empty)


@pytest.mark.parametrize("page", ["index.html", "fundamentals/core_concepts/index.html"])
def test_mermaid_is_not_loaded_eagerly_by_any_page(built_site, page):
    html = (built_site / page).read_text(encoding="utf-8")
    assert "mermaid.min.js" not in html  # only a diagram not drawn ahead would load it


def test_every_diagram_is_drawn_ahead_and_none_is_left_to_the_browser(built_site, capsys):
    """Each ```mermaid fence has its SVG in docs/data/diagrams (no stale ones), and no
    built page still asks the browser to run Mermaid."""
    from sitebuild import diagrams

    assert len(diagrams.wanted()) >= 50
    assert diagrams.main(["--check"]) == 0, capsys.readouterr().out
    left = [p.relative_to(built_site).as_posix() for p in html_pages(built_site)
            if 'class="mermaid"' in p.read_text(encoding="utf-8")]
    assert not left, f"pages that would run Mermaid in the browser: {left}"
