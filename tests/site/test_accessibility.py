"""Accessibility in a real browser: axe-core on every page in light and dark mode,
and the site used with the keyboard alone.

axe-core comes from the pinned `axe-playwright-python` wheel (its `axe.min.js`), so
no Node.js is needed. A page passes when axe finds no serious or critical
violation, nor any of the landmark problems the stock theme had.

Speed: a page of this site has up to ~10,000 elements, most of them highlighted
code tokens, and axe's colour-contrast rule costs about 1 ms per element, more than
all other rules together. An element's contrast depends only on its colour, font,
and the backgrounds and opacities behind it, so that rule checks, on each page, the
elements whose combination it has not checked before (on any earlier page of the
same scheme) and skips repeats: every distinct combination still meets axe, once.
The other rules check every element of every page, except repeats of the same
Pygments markup inside code blocks, which are reduced to their text first. Diagrams are inline SVG drawn when the site
was built (sitebuild/diagrams.py), so axe checks their labels too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.site.conftest import assert_same_origin, record_requests
from tests.site.pages import LAY_OUT_ALL_CODE, PAGES, site_pages

pytestmark = pytest.mark.browser

# The theme overrides and what each changes in Material's partial of the same name.
OVERRIDES = Path(__file__).resolve().parents[2] / "overrides"
FAILING_IMPACTS = {"serious", "critical"}
# Moderate by axe's scale, but named by the issue: keep them fixed too.
ALSO_FAILING = {"landmark-unique", "landmark-no-duplicate-banner",
                "landmark-no-duplicate-contentinfo", "landmark-no-duplicate-main"}

# For the colour-contrast rule only: mark every subtree whose elements all have a style
# signature (colour, font, the backgrounds and opacities behind them) already checked
# on this page or an earlier one; that rule then skips them. The other rules see all.
MARK_REPEATED_STYLES = """
(seen) => {
  const known = new Set(seen);
  const fresh = [];
  const visit = (el, behind) => {
    const cs = getComputedStyle(el);
    const bg = cs.backgroundColor;
    if ((bg && bg !== "rgba(0, 0, 0, 0)") || cs.backgroundImage !== "none"
        || cs.opacity !== "1" || cs.position === "fixed" || cs.position === "sticky") {
      behind = [bg, cs.backgroundImage, cs.opacity, cs.position, behind].join("/");
    }
    let all = true;
    const repeated = [];
    for (const child of el.children) {
      if (visit(child, behind)) repeated.push(child); else all = false;
    }
    const text = el.matches("input, select, textarea")
        || [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const sig = [el.tagName, el.className, cs.color, cs.fontSize, cs.fontWeight,
                 cs.textShadow, cs.visibility, cs.display, behind].join("|");
    let repeat = !text || known.has(sig);
    if (!repeat) { known.add(sig); fresh.push(sig); }
    if (all && repeat) return true;
    for (const child of repeated) child.setAttribute("data-axe-repeat", "");
    return false;
  };
  if (visit(document.body, "")) document.body.setAttribute("data-axe-repeat", "");
  return {fresh, marked: document.querySelectorAll("[data-axe-repeat]").length};
}
"""

# Then the lines of code blocks whose markup is all repeats are replaced by their
# text: axe builds a model of every element of the page before it runs any rule,
# and a page with 16,000 Pygments spans took 7 s for one axe run, 1.4 s after this.
FLATTEN_REPEATED_CODE = """
() => {
  let flattened = 0;
  for (const el of document.querySelectorAll("pre > code > *, pre > code > * > *")) {
    if (!el.isConnected || !el.closest("[data-axe-repeat]")) continue;
    el.replaceWith(document.createTextNode(el.textContent));
    flattened += 1;
  }
  return flattened;
}
"""

RUN_AXE = """
async (contrastOnly) => {
  const report = (results) => results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 200),
                              summary: (n.failureSummary || "").slice(0, 400)})),
  }));
  // Repeated Pygments markup inside code blocks (token spans, line anchors) is left
  // out of the other rules too: identical structure, checked where first seen.
  const code = {include: [document], exclude: [["pre > code[data-axe-repeat]"],
                                               ["pre > code [data-axe-repeat]"]]};
  // "region" (is all content inside landmarks?) is moderate by axe's scale, never
  // fails this test, and costs more than all the other rules on a reference page.
  const others = contrastOnly ? {violations: []} : await axe.run(
      code, {resultTypes: ["violations"],
             rules: {"color-contrast": {enabled: false}, "region": {enabled: false}}});
  const context = {include: [document], exclude: [["[data-axe-repeat]"]]};
  const contrast = document.querySelector("body:not([data-axe-repeat])")
      ? await axe.run(context, {resultTypes: ["violations"], runOnly: ["color-contrast"]})
      : {violations: []};
  return [...report(others), ...report(contrast)];
}
"""


@pytest.fixture(scope="module")
def axe_script() -> str:
    from axe_playwright_python.base import AXE_SCRIPT
    assert "axe v4." in AXE_SCRIPT[:200]
    return AXE_SCRIPT


def failing(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in FAILING_IMPACTS or v["id"] in ALSO_FAILING]


def describe(path: str, violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"/{path}: {v['id']} ({v['impact']}): {v['help']} - {len(v['nodes'])} node(s)")
        for node in v["nodes"][:4]:
            lines.append(f"    {node['target']}: {node['html']!r}\n      {node['summary']}")
    return "\n".join(lines)


def audit(page, axe_script: str, seen: list[str], contrast_only: bool = False) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_script)
    marked = page.evaluate(MARK_REPEATED_STYLES, seen)
    seen.extend(marked["fresh"])
    page.evaluate(FLATTEN_REPEATED_CODE)
    return page.evaluate(RUN_AXE, contrast_only)


SCHEMES = {"light": "default", "dark": "slate"}
# Material fades colours over 125-250 ms when the scheme changes; audit the final ones.
# Audited still, and with every code block laid out: the site lets the browser skip
# the layout of blocks far from view (extra.css), which changes no colour, but axe
# judges contrast from what is laid out.
STILL = ("*, *::before, *::after { transition: none !important; animation: none !important; }"
         " " + LAY_OUT_ALL_CODE)

# The page as a reader's browser has it right after loading, nothing scrolled and
# nothing laid out by force: can a keyboard reach every block too wide for the page?
AS_LOADED = """
async () => {
  const blocks = [...document.querySelectorAll(".md-content pre > code, .md-typeset__scrollwrap")];
  const results = await axe.run(document, {resultTypes: ["violations"],
                                           runOnly: ["scrollable-region-focusable"]});
  return {focusable: blocks.map(el => el.getAttribute("tabindex") === "0"),
          violations: results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 200),
                                      summary: ""}))}))};
}
"""
# Then, every block laid out: which were too wide, and which of those a keyboard could
# not reach when the page had loaded.
UNREACHABLE = """
(focusable) => [...document.querySelectorAll(".md-content pre > code, .md-typeset__scrollwrap")]
  .map((el, i) => ({el, i}))
  .filter(({el, i}) => el.checkVisibility() && el.scrollWidth > el.clientWidth && !focusable[i])
  .map(({el, i}) => `${el.closest("pre")?.id || "table " + i}: ${el.scrollWidth} px in ${el.clientWidth}`)
"""


@pytest.fixture(scope="module")
def audited(browser, site_url):
    """One browser context for this worker's share of the pages, recording every request,
    and the style signatures it has checked so far (per scheme)."""
    context = browser.new_context(color_scheme="light", base_url=site_url)
    requests = record_requests(context)
    page = context.new_page()
    yield page, requests, {scheme: [] for scheme in SCHEMES}
    context.close()


@pytest.mark.parametrize("path", PAGES)
def test_no_page_has_a_serious_accessibility_violation_in_light_or_dark_mode(
        audited, site_url, axe_script, path):
    """The page is loaded as a reader's browser loads it, and every code block or table
    too wide for the page must be focusable already (a keyboard user tabbing down must be
    able to reach and scroll it). Then, every block laid out, the page is audited in the
    light scheme, then switched to the dark one, as the palette toggle does, and audited
    again. In the dark scheme only the rule a
    colour scheme can break runs (colour contrast): the others read structure, names
    and roles, the same in both schemes. Every request made is also checked: no page
    may load anything from another origin. (Moderate findings are printed: -rA.)"""
    page, requests, seen = audited
    page.goto(path, wait_until="load")
    page.evaluate(axe_script)
    loaded = page.evaluate(AS_LOADED)
    problems = [f"as loaded: {describe(path, bad)}" for bad in [failing(loaded["violations"])] if bad]
    page.add_style_tag(content=STILL)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    if unreachable := page.evaluate(UNREACHABLE, loaded["focusable"]):
        problems.append(f"too wide, not focusable when the page loaded: {unreachable}")
    for scheme, palette in SCHEMES.items():
        page.evaluate("s => document.body.setAttribute('data-md-color-scheme', s)", palette)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(255, 255, 255)" if scheme == "light" else
                              "rgb(30, 33, 41)"), (scheme, background)
        violations = audit(page, axe_script, seen[scheme], contrast_only=scheme == "dark")
        if bad := failing(violations):
            problems.append(f"{scheme}: " + describe(path, bad))
        for v in violations:
            if v not in bad:
                print(f"{scheme}: {v['id']} ({v['impact']}) on /{path}")
    assert not problems, "\n".join(problems)
    assert_same_origin(requests, site_url)


def test_the_pages_audited_are_every_page_of_the_build(built_site):
    assert PAGES == site_pages(built_site)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_open_search_with_results_has_no_serious_accessibility_violation(
        browser, site_url, axe_script, scheme):
    context = browser.new_context(color_scheme=scheme, base_url=site_url)
    page = context.new_page()
    page.goto("")
    page.keyboard.press("/")
    page.keyboard.type("event", delay=20)
    page.wait_for_selector("li.md-search-result__item", timeout=15_000)
    violations = audit(page, axe_script, [])
    context.close()
    assert not failing(violations), describe("?search", failing(violations))


def test_search_works_with_the_keyboard_alone(browser, site_url):
    """Open search with a key, type, move down to a result, follow it with Enter."""
    context = browser.new_context(base_url=site_url)
    page = context.new_page()
    page.goto("")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.matches('input.md-search__input')")
    page.keyboard.type("event bus", delay=30)
    page.wait_for_selector("li.md-search-result__item", timeout=15_000)
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.closest('a.md-search-result__link')?.href")
    assert focused, "ArrowDown did not move the focus to a search result"
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url.split("#")[0].split("?")[0] == focused.split("?")[0])
    assert page.locator(".md-content h1").first.is_visible()
    context.close()


def test_the_navigation_works_with_the_tab_key_alone(browser, site_url):
    """The first Tab reaches the skip link; further Tabs reach a chapter tab; Enter opens it."""
    context = browser.new_context(base_url=site_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('md-skip')"), (
        "the first Tab should reach 'Skip to content'")
    target = page.eval_on_selector_all(
        ".md-tabs__link", "els => els.map(e => e.href).filter(h => h !== location.href)")[1]
    for presses in range(1, 80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.href") == target:
            break
    else:
        pytest.fail(f"80 Tabs never reached the navigation link {target}")
    visible = page.evaluate("""() => {
        const el = document.activeElement, style = getComputedStyle(el);
        return el.matches(':focus-visible') && (style.outlineStyle !== 'none'
            || style.boxShadow !== 'none' || style.textDecorationLine.includes('underline'));
    }""")
    assert visible, "the focused navigation link shows no focus indicator"
    page.keyboard.press("Enter")
    page.wait_for_url(target)
    context.close()


def test_the_theme_overrides_change_only_what_they_document():
    """Each override is Material's partial of the same name plus one documented change:
    when Material is upgraded this fails until the overrides are copied afresh."""
    import material

    theme = Path(material.__file__).parent / "templates"
    changes = {
        "partials/search.html": [(
            ("""<div class="md-search" data-md-component="search" role="dialog" """
             """aria-label="{{ lang.t('search') }}">"""),
            """<div class="md-search" data-md-component="search" role="dialog">""")],
        "partials/nav-item.html": [(
            """aria-label="{{ nav_item.title | striptags | trim }}" """,
            """aria-labelledby="{{ path }}_label" """)],
    }
    found = sorted(p.relative_to(OVERRIDES).as_posix() for p in OVERRIDES.rglob("*.html"))
    assert found == sorted([*changes, "main.html"]), "document each override in this test"
    assert '{% extends "base.html" %}' in (OVERRIDES / "main.html").read_text(encoding="utf-8")
    header = re.compile(r"\A\{#-.*?-#\}\n", re.DOTALL)
    for name, edits in changes.items():
        ours = header.sub("", (OVERRIDES / name).read_text(encoding="utf-8"))
        for new, old in edits:
            assert new in ours, f"{name}: the documented change is missing"
            ours = ours.replace(new, old)
        stock = header.sub("", (theme / name).read_text(encoding="utf-8"))
        assert ours == stock, f"overrides/{name} differs from Material's beyond its change"


FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const wide = el.matches(".md-content pre > code, .md-typeset__scrollwrap");
  return {wide, id: wide ? (el.closest("pre")?.id || "table " + [...document.querySelectorAll(
    ".md-typeset__scrollwrap")].indexOf(el)) : el.outerHTML.slice(0, 80)};
}"""
WIDE_BLOCKS = """() => [...document.querySelectorAll(".md-content pre > code, .md-typeset__scrollwrap")]
  .filter(el => el.checkVisibility() && el.scrollWidth > el.clientWidth)
  .map(el => el.closest("pre")?.id || "table " + [...document.querySelectorAll(
    ".md-typeset__scrollwrap")].indexOf(el))"""


@pytest.mark.parametrize(("path", "width"), [("messaging/message_queues/", 360), ("about/", 1280)],
                         ids=["long-page-on-a-phone", "about-tables-on-a-desktop"])
def test_tabbing_down_a_page_reaches_every_block_too_wide_for_it_in_order(
        browser, site_url, path, width):
    """A keyboard user reads a page by pressing Tab from its top to its end: each code
    block or table too wide for the page takes the focus on the way, in page order, so
    the arrow keys can scroll it, though the blocks far from view were not laid out
    when the page loaded. (Which blocks were too wide is measured at the end, with
    every block laid out.)"""
    context = browser.new_context(base_url=site_url, viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(path, wait_until="load")
    reached, first = [], None
    for _ in range(1500):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None or focused == first:  # past the end of the page: around again
            break
        first = first or focused
        if focused["wide"] and focused["id"] not in reached:
            reached.append(focused["id"])
    else:
        pytest.fail("1,500 Tabs never came back to the top of the page")
    page.add_style_tag(content=LAY_OUT_ALL_CODE)
    wide = page.evaluate(WIDE_BLOCKS)
    context.close()
    assert len(wide) >= (4 if width == 360 else 2), wide  # the page is a real test of it
    assert reached == wide


def test_a_wide_block_in_a_collapsed_module_takes_the_focus_only_once_it_is_opened(
        browser, site_url):
    """A closed <details> adds no stop for the keyboard; opened, the module's code
    can be focused (and scrolled) at once, before it is scrolled into view."""
    context = browser.new_context(base_url=site_url, viewport={"width": 360, "height": 800})
    page = context.new_page()
    page.goto("messaging/message_persistence/", wait_until="load")
    code = page.locator("details:not([open]) pre > code").first.element_handle()
    focus = "el => { el.focus(); return document.activeElement === el; }"
    assert not code.evaluate(focus)
    code.evaluate("el => { el.closest('details').open = true; }")
    page.wait_for_function("el => el.getAttribute('tabindex') === '0'", arg=code, timeout=2000)
    assert code.evaluate(focus)
    wide = code.evaluate("el => el.scrollWidth > el.clientWidth")
    context.close()
    assert wide


# Installed before the page's own scripts: the body's colour scheme at the moment the
# parser reaches the page's container (navigation and article), before any of it is drawn.
SCHEME_WHEN_PARSED = """
new MutationObserver((records, observer) => {
  for (const r of records) for (const node of r.addedNodes)
    if (node.classList && node.classList.contains("md-container")) {
      window.__schemeWhenParsed = document.body.getAttribute("data-md-color-scheme");
      observer.disconnect();
    }
}).observe(document, {childList: true, subtree: true});
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_first_visit_is_drawn_in_the_system_s_scheme_from_the_start(
        browser, site_url, axe_script, scheme):
    """No palette stored yet: the navigation and the article are parsed with the system's
    colours already set, so nothing is drawn in the other scheme first and no colour
    transition runs (during one, the navigation's section labels have too little
    contrast). The navigation, audited right after loading, passes axe's contrast rule."""
    context = browser.new_context(color_scheme=scheme, base_url=site_url,
                                  viewport={"width": 1280, "height": 800})
    context.add_init_script(SCHEME_WHEN_PARSED)
    page = context.new_page()
    page.goto("messaging/message_queues/", wait_until="load")
    label = ".md-nav__item--section > .md-nav__link"
    at_load = page.eval_on_selector(label, "el => getComputedStyle(el).color")
    parsed = page.evaluate("window.__schemeWhenParsed")
    page.evaluate(axe_script)
    violations = page.evaluate("""async () => (await axe.run(
        {include: [[".md-sidebar"], [".md-header"], [".md-tabs"]]},
        {resultTypes: ["violations"], runOnly: ["color-contrast"]})).violations.map(v => v.id)""")
    page.wait_for_timeout(400)  # longer than any transition
    settled = page.eval_on_selector(label, "el => getComputedStyle(el).color")
    context.close()
    assert parsed == ("slate" if scheme == "dark" else "default")
    assert at_load == settled, (at_load, settled)
    assert violations == []
