"""Layout on a phone: no page scrolls sideways, except inside code blocks and tables.

Every page of the build is opened at 360 x 740 CSS pixels (a common small Android
phone). The document may not be wider than the viewport; when it is, the failure
names the elements that stick out. Each chapter index is also saved in light and
dark mode (``<chapter>_<scheme>_phone.png``), next to the desktop screenshots that
the last test takes: in a temporary directory, or in EDD_SCREENSHOTS if set.
"""

from __future__ import annotations

import pytest

from sitebuild.facts import CHAPTERS
from tests.site.conftest import assert_same_origin, record_requests
from tests.site.pages import site_pages

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}

# The elements that reach past the right edge, outermost first, leaving out those
# inside a container that scrolls or clips sideways (code blocks, tables).
OVERFLOW = """
() => {
  const width = window.innerWidth;
  const result = {scrollWidth: document.scrollingElement.scrollWidth, width, offenders: []};
  if (result.scrollWidth <= width) return result;
  const clips = (el) => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + [...el.classList].map(c => "." + c).join("");
  for (const el of document.body.querySelectorAll("*")) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.right <= width + 1) continue;
    let inside = false;
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (clips(up)) { inside = true; break; }
    }
    if (inside) continue;
    const parent = el.parentElement;
    if (parent && parent !== document.body && parent.getBoundingClientRect().right > width + 1) continue;
    const path = [];
    for (let up = el; up && up !== document.body && path.length < 4; up = up.parentElement) path.unshift(describe(up));
    result.offenders.push(`${path.join(" > ")} (right edge ${Math.round(rect.right)}px): `
        + JSON.stringify((el.textContent || "").trim().slice(0, 60)));
  }
  return result;
}
"""


def chapter_index(path: str) -> bool:
    return path.count("/") <= 1 and not path.startswith("reference/")


def shot_name(path: str, scheme: str) -> str:
    return (path.strip("/").replace("/", "_") or "home") + f"_{scheme}_phone.png"


@pytest.mark.timeout(1200)
def test_no_page_scrolls_sideways_on_a_phone(browser, built_site, site_url, screenshot_dir):
    """Every page at phone size; each chapter index is also saved as a screenshot in
    the light and the dark scheme for review. Requests are checked for offline use."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  color_scheme="light", base_url=site_url)
    requests = record_requests(context)
    page = context.new_page()
    pages = site_pages(built_site)
    wide = []
    for path in pages:
        page.goto(path, wait_until="load")
        found = page.evaluate(OVERFLOW)
        if found["scrollWidth"] > found["width"]:
            wide.append(f"/{path}: {found['scrollWidth']}px wide on a {found['width']}px screen\n    "
                        + "\n    ".join(found["offenders"][:8] or ["(no single element found)"]))
        if chapter_index(path):
            page.add_style_tag(content="* { transition: none !important; }")
            for scheme, palette in (("light", "default"), ("dark", "slate")):
                page.evaluate("s => document.body.setAttribute('data-md-color-scheme', s)",
                              palette)
                shot = screenshot_dir / shot_name(path, scheme)
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
    page.wait_for_load_state("networkidle")
    context.close()
    assert len(pages) >= 10
    assert not wide, f"{len(wide)} page(s) scroll sideways on a phone:\n" + "\n".join(wide)
    assert_same_origin(requests, site_url)
    print(f"phone screenshots in {screenshot_dir}")


def test_the_home_page_renders_with_its_chapters(page):
    page.goto("")
    assert "Event-Driven Design" in page.title()
    assert page.locator(".md-content h1").first.inner_text().startswith("Event-Driven Design")
    tabs = page.locator(".md-tabs__link").all_inner_texts()
    assert "Fundamentals" in [t.strip() for t in tabs]


CHAPTER_INDEXES = [""] + [f"{chapter}/" for chapter in CHAPTERS]


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

