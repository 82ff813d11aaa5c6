"""Browser fixtures shared by every browser test module of the site."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sitebuild.facts import CHROMIUM
from sitebuild.facts import CHROMIUM_ARGS as ARGS
from tests.site import js_coverage
from tests.site.pages import CODE_BLOCKS


@pytest.fixture(scope="module")
def browser(request):
    """Chromium for this module only: Playwright's sync API keeps an event loop
    running while it is open, which would break asyncio.run() in later tests.

    Every page it opens records Chromium's coverage of the site's scripts, left for
    the end of the run in the run's coverage directory (tests/site/js_coverage.py)."""
    if not Path(CHROMIUM).exists():
        message = "Chromium not found: install it with `apt-get install chromium` (Debian)"
        if os.environ.get("CI"):
            pytest.fail(message + " - CI must not skip browser tests")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    recorder = js_coverage.Recorder()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield js_coverage.instrument(browser, recorder)
        browser.close()
    recorder.write(js_coverage.run_dir(request.config), request.node.nodeid)


def pytest_deselected(items) -> None:
    """Remember the tests left out, so the run can tell whether it ran every browser test."""
    if items:
        items[0].config.stash.setdefault(js_coverage.DESELECTED, []).extend(items)


def record_requests(context) -> list[str]:
    """Every URL the context's pages request, from now on."""
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    return requests


def assert_same_origin(requests: list[str], site_url: str) -> None:
    """The site works offline: nothing it loads may come from another origin."""
    foreign = sorted({u for u in requests if not u.startswith((site_url, "data:", "blob:"))})
    assert not foreign, f"requests left the site's origin: {foreign}"


@pytest.fixture
def page(browser, site_url):
    """A fresh page that records every request and fails the test on a foreign one.
    (The tests that visit every page record their requests the same way, so every
    page of the site is checked for offline use in several browser contexts.)"""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  color_scheme="light", base_url=site_url)
    requests = record_requests(context)
    page = context.new_page()
    page.requests = requests
    yield page
    context.close()
    assert_same_origin(requests, site_url)


# Every code block comes with its copy button from the build (sitebuild/speed.py).
# site.js makes a block or table too wide for the page focusable (so a keyboard can
# scroll it) as the page loads, and measures a code block again when the browser lays
# it out, which it does only near the view (extra.css). Bring each into view, as a
# reader scrolling down the page would, and wait until both hold.
SET_UP_CODE_BLOCKS = """
async (selector) => {
  const frame = () => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const shown = [...document.querySelectorAll(`${selector}, .md-typeset__scrollwrap`)]
    .filter(el => el.checkVisibility());
  for (const el of shown) {
    el.scrollIntoView({block: "center"});
    await frame();
  }
  window.scrollTo(0, 0);
  await frame();
  const missing = () => shown.filter(el =>
    (el.matches(selector) && !el.parentElement.querySelector(":scope > .md-code__nav > .md-code__button"))
    || (el.scrollWidth > el.clientWidth && el.getAttribute("tabindex") !== "0"));
  for (let waited = 0; missing().length && waited < 3000; waited += 50)
    await new Promise(resolve => setTimeout(resolve, 50));
  return missing().length;
}
"""


def set_up_code_blocks(page) -> None:
    """Wait until every shown code block has its copy button and every wide one can be focused."""
    left = page.evaluate(SET_UP_CODE_BLOCKS, CODE_BLOCKS)
    assert left == 0, f"{page.url}: {left} code block(s) or table(s) not set up"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    wanted = os.environ.get("EDD_SCREENSHOTS")
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# The search worker answers every query with one message, in order, and site.js shows
# the answer as it arrives. Counting the queries the page sends and the answers it gets
# tells a test when the list on screen answers the last key typed, with no guessing
# from how long the list has stayed the same.
WATCH_SEARCH = """
if (!window.__search) {
  const watch = window.__search = { asked: 0, answered: 0, last: null };
  const Native = window.Worker;
  window.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", ({ data }) => {
        if (data && data.data && Array.isArray(data.data.items)) watch.answered += 1;
      });
    }
    postMessage(message, ...rest) {
      if (message && typeof message.data === "string") {
        watch.asked += 1;
        watch.last = message.data;
      }
      return super.postMessage(message, ...rest);
    }
  };
}
"""
SEARCH_ANSWERED = ("q => window.__search && window.__search.last === q"
                   " && window.__search.answered === window.__search.asked")
READ_RESULTS = ("els => els.map(li => new URL(li.querySelector('a.md-search-result__link').href)"
                ".pathname)")


def watch_search(page) -> None:
    """From the next page load on, count the search worker's queries and answers."""
    page.add_init_script(WATCH_SEARCH)


def search_results(page, query: str) -> list[str]:
    """Wait until the search has answered ``query``; return the result pages, in order."""
    page.wait_for_function(SEARCH_ANSWERED, arg=query, timeout=60_000)
    return page.eval_on_selector_all("li.md-search-result__item", READ_RESULTS)


def search(page, query: str) -> list[str]:
    """Type a query key by key into the site's search; return the result pages in order."""
    watch_search(page)
    page.goto("")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").press_sequentially(query, delay=30)
    return search_results(page, query)
