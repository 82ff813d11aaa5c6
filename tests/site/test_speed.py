"""Page speed work that must not silently come undone (sitebuild/speed.py,
overrides/main.html, docs/assets/javascripts/site.js).

Lighthouse itself runs in a benchmark (`make bench BENCH=site`), never in a test:
its scores swing with the machine's load. What is tested here is the work a page
load causes, counted, not timed: that Material's script bundle is gone and what it
built is in the HTML, that no script changes the article as a page loads, how
many elements Chromium restyles while a long page loads, and that the colour
scheme still reaches the page canvas.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from sitebuild import speed
from tests.site.pages import (
    LAY_OUT_ALL_CODE,
    site_pages,
    snippet_modules,
    tags_of,
)

LONG_PAGE = "messaging/message_queues/"  # six backends in tabs, 30 code blocks' worth of tokens
TABLES_PAGE = "event_sourcing/event_store/"  # long too, with four tables


# --- The build hook ---------------------------------------------------------------

def test_each_code_block_gets_a_numbered_copy_button_for_its_own_code():
    html = ('<p>x</p><pre><span></span><code>a = 1\nb = 2\n</code></pre>'
            '<div><pre><code>b</code></pre></div>')
    built = speed.copy_buttons(html)
    assert built.count('class="md-code__button"') == 2
    for n, (code, lines, cols) in enumerate([("a = 1\nb = 2\n", 2, 5), ("b", 1, 1)]):
        assert re.search(rf'<pre id="__code_{n}">(<span></span>)?<div class="md-code__nav">'
                         rf'<button [^>]*data-clipboard-target="#__code_{n} &gt; code"'
                         rf'[^>]*></button></div><code style="--ed-lines: {lines}; '
                         rf'--ed-cols: {cols}">{code}</code>', built), built
    assert speed.copy_buttons("<p>no code</p>") == "<p>no code</p>"


@pytest.mark.parametrize(("code", "columns"), [
    ("", 0),
    ('<span class="k">def</span> <span class="nf">f</span>():\n    pass\n', 8),
    ("x &lt;= y &amp;&amp; z\n", 11),  # entities are one character each
    ("\tx = 1", 13),  # a tab reaches the next multiple of 8
    ("a\tb", 9),
    ("日記 = 1", 8),  # a wide character takes two columns
    ("é → ü", 5),
    ("short\n" + "y" * 120 + "\nshort", 120),
])
def test_a_code_block_s_widest_line_is_counted_in_monospace_columns(code, columns):
    assert speed.columns(code) == columns


def test_each_table_is_wrapped_to_scroll_inside_the_page():
    html = "<table><tr><td>1</td></tr></table><p>between</p><table>\n<tr><td>2</td></tr></table>"
    built = speed.wrap_tables(html)
    wrapped = re.findall(r'<div class="md-typeset__scrollwrap"><div class="md-typeset__table">'
                         r"<table>(.*?)</table></div></div>", built, re.DOTALL)
    assert wrapped == ["<tr><td>1</td></tr>", "\n<tr><td>2</td></tr>"]
    assert "<p>between</p>" in built


def test_code_keeps_its_text_and_colours_with_fewer_spans():
    """Over every module of snippets/, highlighted as the site highlights it: the same
    text, no span of a plain token left, no two neighbouring spans of one kind, and
    every coloured token still in a span of its class."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    before = after = 0
    for module in snippet_modules():
        code = "<code>" + highlight(module.read_text(encoding="utf-8"), PythonLexer(),
                                    HtmlFormatter(nowrap=True)) + "</code>"
        lighter = speed.fewer_spans(code)
        assert html.unescape(re.sub(r"<[^>]+>", "", lighter)) == html.unescape(
            re.sub(r"<[^>]+>", "", code)), module
        assert not re.search(r'<span class="[nw]">', lighter), module
        assert not re.search(r'<span class="([\w ]+)">[^<]*</span><span class="\1">', lighter), module
        coloured = lambda h: [(c, t) for c, t in re.findall(r'<span class="([^"]+)">([^<]*)</span>', h)
                              if c not in ("n", "w")]
        assert "".join(t for _, t in coloured(lighter)) == "".join(t for _, t in coloured(code))
        before, after = before + code.count("<span"), after + lighter.count("<span")
    assert after < 0.8 * before, (before, after)


def test_no_page_loads_the_theme_bundle_and_every_block_and_table_is_built_set_up(built_site):
    """Read as a stream of start tags (tests/site/pages.py): a block is
    ``<pre id=X><span></span><div class="md-code__nav"><button data-clipboard-target="#X > code">``
    then its ``<code>``; a table sits in a scroll wrapper, then a table wrapper."""
    pages = site_pages(built_site)
    assert len(pages) >= 10
    for path in pages:
        tags = tags_of(built_site / path / "index.html")
        scripts = [t.attrs["src"] for t in tags if t.name == "script" and "src" in t.attrs]
        assert not [s for s in scripts if "/bundle." in s or s.startswith("bundle.")], path
        assert any(s.endswith("assets/javascripts/site.js") for s in scripts), path
        for i, tag in enumerate(tags):
            if tag.name == "pre":
                end = next(j for j in range(i + 1, len(tags)) if tags[j].name == "code")
                inside = [(t.name, t.attrs.get("class"), t.attrs.get("data-clipboard-target"))
                          for t in tags[i + 1:end] if t.name != "span"]
                assert inside == [("div", "md-code__nav", None),
                                  ("button", "md-code__button", f"#{tag.attrs['id']} > code")], \
                    (path, tag.attrs.get("id"), inside)
            elif tag.name == "table":
                wrappers = [(t.name, t.attrs.get("class")) for t in tags[i - 2:i]]
                assert wrappers == [("div", "md-typeset__scrollwrap"),
                                    ("div", "md-typeset__table")], (path, wrappers)


# --- In Chromium ------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("path", [LONG_PAGE, TABLES_PAGE])
def test_a_long_page_is_restyled_little_more_than_once_while_it_loads(browser, site_url, path):
    """Counted in Chromium's own trace: every element whose style it computes, in
    every style pass from navigation until the page has settled, against the
    elements shown. With Material's bundle the two pages cost 9.0 and 2.5 times
    their elements (palette switching rule, focus-visible class, colour-scheme
    meta, every code block set up at once, a table rule); after the first speed
    work 2.4 and 1.6; without the bundle, about RATIO. One more whole-page
    restyle adds about 1."""
    context = browser.new_context(base_url=site_url, viewport={"width": 412, "height": 823},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    browser.start_tracing(page=page, categories=["devtools.timeline"])
    page.goto(path, wait_until="load")
    page.wait_for_timeout(1500)
    trace = json.loads(browser.stop_tracing())
    shown = page.evaluate("""() => [...document.querySelectorAll("body *")]
        .filter(el => el.checkVisibility()).length""")
    context.close()
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    restyled = sum(e.get("args", {}).get("elementCount", 0)
                   for e in events if e.get("name") == "UpdateLayoutTree")
    assert shown > 2000, shown
    assert restyled < 3 * shown, (f"{restyled} element styles computed for {shown} elements "
                                  "shown: something restyles the whole page again")


# Installed before any script of the page runs: every change to the article.
WATCH_ARTICLE = """
window.__articleChanges = [];
document.addEventListener("DOMContentLoaded", () => {
  const article = document.querySelector(".md-content");
  new MutationObserver(records => {
    for (const r of records) window.__articleChanges.push(
      `${r.type} ${r.attributeName || ""} on ${r.target.nodeName}.${r.target.className || ""}`);
  }).observe(article, {subtree: true, childList: true, attributes: true, characterData: true});
}, {capture: true, once: true});
"""


@pytest.mark.browser
@pytest.mark.parametrize("path", ["", LONG_PAGE, TABLES_PAGE, "about/"])
def test_no_script_changes_the_article_while_the_page_loads(browser, site_url, path):
    """What Material's bundle changed in every article as it loaded (copy buttons,
    table wrappers, tabs, annotations), each change a restyle, is built in; the
    only change left is the focusability of blocks too wide for the page."""
    context = browser.new_context(base_url=site_url, viewport={"width": 412, "height": 823},
                                  is_mobile=True, has_touch=True)
    context.add_init_script(WATCH_ARTICLE)
    page = context.new_page()
    page.goto(path, wait_until="load")
    page.wait_for_timeout(1000)
    changes = page.evaluate("window.__articleChanges")
    context.close()
    assert [c for c in changes if not c.startswith("attributes tabindex on CODE")
            and not c.startswith("attributes tabindex on DIV.md-typeset__scrollwrap")] == []


@pytest.mark.browser
def test_the_page_canvas_follows_the_palette_without_the_theme_meta(page):
    page.goto("")
    root = "getComputedStyle(document.documentElement).colorScheme"
    assert page.evaluate("document.querySelectorAll('meta[name=color-scheme]').length") == 0
    assert page.evaluate("[...document.documentElement.classList]")[:2] == ["js", "js-focus-visible"]
    assert page.evaluate(root) == "normal"
    page.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")
    assert page.evaluate(root) == "dark"


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 360])
def test_code_far_from_view_is_not_laid_out_and_its_height_is_reserved_exactly(browser, site_url, width):
    """The browser skips laying out a code block far from view (extra.css), keeping
    its height from its number of lines: when the block is laid out, nothing moves."""
    context = browser.new_context(base_url=site_url, viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(TABLES_PAGE, wait_until="load")
    page.wait_for_timeout(300)
    heights = """() => [...document.querySelectorAll('.md-typeset pre > code')]
        .filter(c => c.checkVisibility()).map(c => c.getBoundingClientRect().height)"""
    skipped = page.evaluate("""() => [...document.querySelectorAll('.md-typeset pre > code > *')]
        .filter(el => !el.checkVisibility({contentVisibilityAuto: true})).length""")
    reserved = page.evaluate(heights)
    page.add_style_tag(content=LAY_OUT_ALL_CODE)
    laid_out = page.evaluate(heights)
    context.close()
    assert skipped > 1000, skipped  # most of the page's code waits
    assert len(reserved) >= 5 and len(reserved) == len(laid_out)
    moved = [(round(r), round(a)) for r, a in zip(reserved, laid_out) if abs(r - a) > 1]
    assert not moved, f"reserved vs laid-out heights (px): {moved}"


@pytest.mark.browser
@pytest.mark.parametrize("path", ["about/", LONG_PAGE])
def test_nothing_shifts_while_a_page_loads(page, path):
    page.goto(path)
    page.wait_for_load_state("networkidle")
    shifted = page.evaluate("""() => new Promise(resolve => {
        let total = 0;  // every layout shift since navigation (buffered), summed
        new PerformanceObserver(list => list.getEntries().forEach(e => { total += e.value; }))
            .observe({type: "layout-shift", buffered: true});
        setTimeout(() => resolve(total), 300);
    })""")
    assert shifted < 0.001, f"the page shifted by {shifted:.3f} while it loaded"
