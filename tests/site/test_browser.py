"""The built site in a real headless Chromium: search, diagrams, copy, offline, dark mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_as_reader
from tests.site.conftest import search
from tests.site.pages import SNIPPETS, module_as_shown

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHAPTER_INDEXES = [""] + sorted(f"{p.parent.name}/" for p in DOCS.glob("*/index.md"))


def test_the_home_page_renders_with_its_chapters(page):
    page.goto("")
    assert "Event-Driven Design" in page.title()
    assert page.locator(".md-content h1").first.inner_text().startswith("Event-Driven Design")
    tabs = page.locator(".md-tabs__link").all_inner_texts()
    assert "Fundamentals" in [t.strip() for t in tabs]


@pytest.mark.parametrize("query", ["event bus", "EventBus", "subscribe"])
def test_search_typed_key_by_key_finds_the_event_bus_page(page, query):
    links = search(page, query)
    assert any(link.endswith("fundamentals/core_concepts/") for link in links[:3]), (query, links)


def test_the_search_index_waits_until_the_reader_reaches_for_search(page):
    """The index is most of a page's weight: it is fetched on intent, not on load."""
    page.goto("event_sourcing/")
    page.wait_for_load_state("networkidle")
    page.mouse.wheel(0, 600)  # reading is not searching
    page.wait_for_timeout(300)
    assert not any("search_index" in u for u in page.requests)
    with page.expect_request(lambda r: r.url.endswith("search/search_index.json")):
        page.keyboard.press("/")  # Material's shortcut focuses the search field
    page.keyboard.type("snapshot")
    page.wait_for_selector(".md-search-result__item")


def test_a_shared_search_link_loads_the_index_at_once(page):
    """A link with ?q= opens the search with its results (Material's search.share)."""
    page.goto("?q=outbox")
    page.wait_for_selector(".md-search-result__item")
    assert any(u.endswith("search/search_index.json") for u in page.requests)


def test_diagrams_arrive_drawn_and_mermaid_is_never_downloaded(page):
    """Diagrams are SVG in the page itself (docs/_hooks/diagrams.py): nothing to run."""
    page.goto("fundamentals/core_concepts/")
    svg = page.locator(".ed-diagram svg").first
    assert svg.locator("g").count() > 0 and svg.bounding_box()["width"] > 200
    page.wait_for_load_state("networkidle")
    assert not any("mermaid" in u for u in page.requests)


def test_diagram_colours_follow_the_colour_scheme(page):
    """The SVG takes its colours from Material's --md-mermaid-* variables."""
    page.goto("fundamentals/core_concepts/")
    fill = "() => getComputedStyle(document.querySelector('.ed-diagram svg .nodeLabel')).color"
    light = page.evaluate(fill)
    page.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")
    assert page.evaluate(fill) != light


def test_following_a_tab_to_a_diagram_page_shows_its_diagram(page):
    page.goto("reference/fundamentals/")
    page.locator(".md-tabs__link", has_text="Fundamentals").click()
    page.wait_for_selector(".ed-diagram svg g")
    assert not any("mermaid" in u for u in page.requests)


def test_the_copy_button_yields_exactly_the_runnable_module(page):
    page.goto("fundamentals/core_concepts/")
    block = page.locator("div.language-python.highlight", has=page.locator(
        ".filename", has_text="core_concepts_message_kinds.py")).first
    block.hover()
    block.locator("button.md-code__button[data-md-type='copy'], button.md-clipboard").first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    expected = module_as_shown(SNIPPETS / "fundamentals" / "core_concepts_message_kinds.py")
    assert copied.rstrip("\n") == expected
    done = run_as_reader(copied)
    assert done.returncode == 0, done.stderr
    assert "rejected: sessions_per_week must be 1..14, got 30" in done.stdout


def test_the_palette_toggle_switches_to_dark_mode_and_back(page):
    page.goto("")
    scheme = lambda: page.evaluate("document.body.getAttribute('data-md-color-scheme')")  # noqa: E731
    seen = [scheme()]
    for _ in range(3):
        page.locator("form[data-md-component='palette'] label:visible").first.click()
        seen.append(scheme())
    assert "slate" in seen and "default" in seen, seen


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_each_chapter_index(browser, site_url, screenshot_dir, scheme):
    context = browser.new_context(color_scheme=scheme, base_url=site_url,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    for path in CHAPTER_INDEXES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        name = (path.strip("/").replace("/", "_") or "home") + f"_{scheme}.png"
        page.screenshot(path=str(screenshot_dir / name), full_page=True)
        assert (screenshot_dir / name).stat().st_size > 10_000
    context.close()
    print(f"screenshots in {screenshot_dir}")
