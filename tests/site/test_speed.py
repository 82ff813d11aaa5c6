"""Page speed work that must not silently come undone (docs/_hooks/speed.py,
overrides/main.html, `content.lazy` in mkdocs.yml).

Lighthouse itself runs in a benchmark (`make bench BENCH=site`), never in a test:
its scores swing with the machine's load. What is tested here is the work a page
load causes, counted, not timed: how many elements Chromium restyles while a long
page loads, whether code blocks out of view are left alone until they come into
view, and that the colour scheme still reaches the page canvas.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.site.pages import CODE_BLOCKS, hook

speed = hook("speed")

LONG_PAGE = "messaging/message_queues/"  # six backends in tabs, 30 code blocks' worth of tokens
TABLES_PAGE = "event_sourcing/event_store/"  # long too, with four tables the theme wraps


# --- The build hook ---------------------------------------------------------------

def _site_with(tmp_path: Path, extra: str = "") -> tuple[dict, dict[str, Path]]:
    """A built site's stylesheet folder holding the theme's two sheets, with the rules."""
    sheets = tmp_path / "assets" / "stylesheets"
    sheets.mkdir(parents=True)
    made = {}
    for pattern, rule in speed.DROPPED.items():
        made[pattern] = sheets / pattern.replace("*", "0123abcd")
        made[pattern].write_text("a{color:red}" + rule + extra, encoding="utf-8")
    return {"site_dir": str(tmp_path)}, made


def test_each_whole_page_restyling_rule_is_dropped_and_nothing_else(tmp_path):
    config, sheets = _site_with(tmp_path, "b{color:blue}")
    speed.on_post_build(config)
    for sheet in sheets.values():
        assert sheet.read_text() == "a{color:red}" + speed.REMOVED + "b{color:blue}"
    speed.on_post_build(config)  # a `serve --dirty` rebuild finds it done and leaves it
    assert all(sheet.read_text().count(speed.REMOVED) == 1 for sheet in sheets.values())


def test_a_theme_upgrade_that_changes_a_rule_fails_the_build_by_name(tmp_path):
    config, sheets = _site_with(tmp_path)
    main = sheets["main.*.min.css"]
    main.write_text("a{color:red}")
    with pytest.raises(ValueError, match=r"table:not.*once in main\.0123abcd.*update docs/_hooks/speed.py"):
        speed.on_post_build(config)
    assert main.read_text() == "a{color:red}"  # left as it was


def test_the_bundle_is_deferred_once_and_a_changed_tag_fails_by_name():
    tag = '<script src="assets/javascripts/bundle.0123abcd.min.js"></script>'
    assert speed.defer(f"<body>{tag}</body>", "p.md") == (
        '<body><script src="assets/javascripts/bundle.0123abcd.min.js" defer></script></body>')
    with pytest.raises(ValueError, match="p.md: expected Material's bundle script tag once"):
        speed.defer("<body></body>", "p.md")


def test_only_a_list_that_follows_an_annotated_block_is_marked():
    annotated = ('<div class="language-console highlight"><pre><code>'
                 '<span class="c1"># (1)!</span></code></pre></div>\n<ol>\n<li>note</li></ol>')
    plain = ('<div class="language-python highlight"><pre><code>'
             '<span class="n">x</span> <span class="o">=</span> (1)</code></pre></div>\n<ol><li>a step</li></ol>')
    assert '<ol class="ed-annotations">' in speed.mark_annotation_lists(annotated)
    assert speed.mark_annotation_lists(plain) == plain  # "(1)" outside a comment is code
    assert speed.mark_annotation_lists(plain + annotated).count("ed-annotations") == 1


def test_the_built_stylesheets_have_neither_rule(built_site):
    for pattern, rule in speed.DROPPED.items():
        (sheet,) = (built_site / "assets" / "stylesheets").glob(pattern)
        text = sheet.read_text(encoding="utf-8")
        assert rule not in text and speed.REMOVED in text, sheet.name


# --- In Chromium ------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("path", [LONG_PAGE, TABLES_PAGE])
def test_a_long_page_is_restyled_little_more_than_once_while_it_loads(browser, site_url, path):
    """Counted in Chromium's own trace: every element whose style it computes, in
    every style pass from navigation until the page has settled, against the
    elements shown. Before the speed work the two pages cost 9.0 and 2.5 times
    their elements (palette switching rule, focus-visible class, colour-scheme
    meta, every code block set up at once, a table rule); after it, 2.4 and 1.6.
    One more whole-page restyle adds about 1."""
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


@pytest.mark.browser
def test_code_blocks_are_set_up_only_when_they_come_into_view(page):
    page.goto(LONG_PAGE)
    page.wait_for_load_state("networkidle")
    toolbars = (f"() => [...document.querySelectorAll(\"{CODE_BLOCKS}\")]"
                ".filter(c => c.checkVisibility())"
                ".map(c => !!c.parentElement.querySelector(':scope > .md-code__nav'))")
    before = page.evaluate(toolbars)
    assert len(before) >= 3 and not before[-1], before  # the last one is far below
    last = page.locator(f"{CODE_BLOCKS}:visible").last
    last.scroll_into_view_if_needed()
    last.locator("xpath=..").locator(".md-code__nav button[data-md-type='copy']").wait_for()
    assert page.evaluate(toolbars)[-1]


@pytest.mark.browser
def test_the_page_canvas_follows_the_palette_without_the_theme_meta(page):
    page.goto("")
    root = "getComputedStyle(document.documentElement).colorScheme"
    assert page.evaluate("document.querySelectorAll('meta[name=color-scheme]').length") == 0
    assert page.evaluate("document.documentElement.className") == "js js-focus-visible"
    assert page.evaluate(root) == "normal"
    page.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")
    assert page.evaluate(root) == "dark"


@pytest.mark.browser
def test_an_annotated_block_set_up_late_does_not_shift_the_page(page):
    """The About page's first code block has an annotation; its list is hidden from
    the start, so setting the block up after the page is drawn moves nothing."""
    page.goto("about/")
    page.wait_for_load_state("networkidle")
    page.wait_for_selector("pre .md-annotation")  # the theme set the block up
    shifted = page.evaluate("""() => new Promise(resolve => {
        let total = 0;  // every layout shift since navigation (buffered), summed
        new PerformanceObserver(list => list.getEntries().forEach(e => { total += e.value; }))
            .observe({type: "layout-shift", buffered: true});
        setTimeout(() => resolve(total), 300);
    })""")
    assert not page.locator("ol.ed-annotations").is_visible()
    assert shifted < 0.001, f"the page shifted by {shifted:.3f} while it loaded"
