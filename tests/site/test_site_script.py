"""What docs/assets/javascripts/site.js does in place of Material's script bundle,
checked in Chromium as a reader would meet it. Search, copy and keyboard use of
search are checked in their own files (test_search, test_copy, test_accessibility);
these are the rest: palette, scrolling, content tabs, links to a search, focus rings,
page keys."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

LONG_PAGE = "messaging/message_queues/"


def test_the_palette_switch_changes_the_scheme_and_later_pages_keep_it(page):
    page.goto("")
    body = "document.body.getAttribute('data-md-color-scheme')"
    shown = page.locator("form[data-md-component=palette] label:visible")
    assert shown.count() == 1  # one switch at a time, saying what it does next
    assert shown.get_attribute("title") == "Switch to light mode"  # it follows the system
    assert page.evaluate(body) == "default"  # whose preference is light here
    shown.click()
    assert shown.get_attribute("title") == "Switch to dark mode"
    shown.click()
    assert page.evaluate(body) == "slate"
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == "dark"
    page.goto(LONG_PAGE)  # the theme's inline script restores it before drawing
    assert page.evaluate(body) == "slate"
    assert page.locator("form[data-md-component=palette] label:visible").get_attribute(
        "title") == "Switch to system preference"
    page.locator("form[data-md-component=palette] label:visible").click()
    assert page.evaluate(body) == "default"  # the system's, light here


def test_scrolling_marks_the_section_in_view_and_folds_the_header(page):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(LONG_PAGE)
    toc = page.locator(".md-sidebar--secondary [data-md-component=toc] a.md-nav__link")
    assert page.locator("[data-md-component=toc] .md-nav__link--active").count() == 0
    assert page.locator("[data-md-component=tabs]").is_visible()
    target = toc.nth(3).get_attribute("href")
    page.locator(target).evaluate("h => window.scrollTo(0, h.getBoundingClientRect().top + scrollY - 50)")
    page.wait_for_function("h => location.hash === h", arg=target)  # navigation.tracking
    for toc in page.locator("[data-md-component=toc]").all():  # the sidebar's and the drawer's
        active = toc.locator(".md-nav__link--active")
        assert active.count() == 1 and active.get_attribute("href") == target
        assert toc.locator(".md-nav__link--passed").count() == 3
    assert "md-header__title--active" in page.locator("[data-md-component=header-title]").get_attribute("class")
    assert "md-header--shadow" in page.locator("[data-md-component=header]").get_attribute("class")
    assert page.locator("[data-md-component=tabs]").get_attribute("hidden") is not None
    top = page.locator("[data-md-component=top]")
    # Material's stylesheet fades a [hidden] button out rather than removing it.
    assert top.get_attribute("hidden") is not None  # scrolling down
    page.mouse.wheel(0, -300)
    page.wait_for_function("!document.querySelector('[data-md-component=top]').hidden")  # up
    top.click()
    page.wait_for_function("scrollY === 0")
    page.wait_for_function("!document.querySelector('[data-md-component=tabs]').hidden")


def test_a_chosen_content_tab_is_chosen_again_wherever_its_label_appears(page):
    page.goto("messaging/message_routing/")
    sets = page.locator(".tabbed-set")
    selected = ("set => set.querySelector(`label[for='${[...set.querySelectorAll(':scope > input')]"
                ".find(i => i.checked).id}']`).textContent.trim()")
    assert [s.evaluate(selected) for s in sets.all()] == ["RabbitMQ", "Kafka protocol"]
    sets.first.locator("label", has_text="NATS").first.click()
    assert [s.evaluate(selected) for s in sets.all()] == ["NATS", "Kafka protocol"]  # no NATS tab
    page.goto("messaging/request_reply/")  # RabbitMQ first, NATS second
    assert page.locator(".tabbed-set").first.evaluate(selected) == "NATS"


def test_a_link_to_a_search_opens_it_with_results(page):
    page.goto("?q=snapshot")
    page.wait_for_selector("li.md-search-result__item", timeout=15_000)
    assert page.locator("input.md-search__input").input_value() == "snapshot"
    assert page.evaluate("document.activeElement.matches('input.md-search__input')")
    page.keyboard.press("Escape")
    assert "q=" not in page.url  # closing search takes the query out of the address


def test_a_focus_ring_shows_for_the_keyboard_and_not_for_the_mouse(page):
    page.goto(LONG_PAGE)
    page.locator(".md-code__button").first.click()  # focused after copying
    assert page.evaluate("document.activeElement.matches('.md-code__button')")
    assert "focus-visible" not in page.evaluate("document.activeElement.className")
    page.goto(LONG_PAGE)
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # the logo
    focused = page.evaluate("document.activeElement.className")
    assert "md-logo" in focused and "focus-visible" in focused, focused
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_p_and_n_go_to_the_previous_and_next_page_and_copy_says_so(page):
    page.goto(LONG_PAGE)
    page.keyboard.press("n")
    page.wait_for_url("**/messaging/message_persistence/")
    page.keyboard.press("p")
    page.wait_for_url(f"**/{LONG_PAGE}")
    page.locator(".md-code__button").first.click()
    dialog = page.locator("[data-md-component=dialog]")
    assert dialog.inner_text().strip() == "Copied to clipboard"
    assert "md-dialog--active" in dialog.get_attribute("class")
