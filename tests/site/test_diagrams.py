"""Diagrams in Chromium: drawn to SVG when the site was built (sitebuild/diagrams.py),
so a page shows them at once, in the reader's colour scheme, without Mermaid."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_diagrams_arrive_drawn_and_mermaid_is_never_downloaded(page):
    """Diagrams are SVG in the page itself (sitebuild/diagrams.py): nothing to run."""
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
