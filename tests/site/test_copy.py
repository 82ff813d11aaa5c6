"""Copy in the browser: every copy button on every page puts the runnable source on
the clipboard, and nothing else (no prompts, no output).

One test per page, in a browser context with clipboard permissions. On the page
every block is revealed as a reader would reveal it (a collapsed `??? example`
block opened, its tab selected), its copy button clicked (a real click: Chromium
lets a script-made click copy only a few times), and the clipboard read back; the
expectations are then checked here:

* a whole-module Python block copies exactly the text of a module of `snippets/`,
  an excerpt copies lines found verbatim (dedented) in one;
* a console block copies its commands only: no `$ ` prompt, no printed output;
* any block copies what it shows, less prompts.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_as_reader
from tests.site.conftest import assert_same_origin, record_requests
from tests.site.pages import (
    CODE_BLOCKS,
    PAGES,
    PYTHON_LANGS,
    SNIPPETS,
    contains_dedented,
    html_pages,
    module_as_shown,
)

pytestmark = pytest.mark.browser

NOTHING = "\u0000nothing was copied"
SESSION_LANGS = {"console", "pycon", "shell-session", "bash-session", "doscon", "ps1con"}

# Number every code block of the page (each has a copy button, sitebuild/speed.py),
# and keep a function that says what a block shows, line by line, and which lines
# start with a console prompt, so the test can say what should be copied.
PREPARE = """
(selector) => {
  const PROMPT = "\\u0001";
  window.__describeBlock = (code) => {
    const block = code.closest(".highlight");
    const language = [...block.classList].find(c => c.startsWith("language-")) || "";
    const copy = code.cloneNode(true);
    copy.querySelectorAll(".gp").forEach(n => n.replaceWith(PROMPT));  // a console prompt
    const lines = copy.textContent.replace(/\\n$/, "").split("\\n").map(line => ({
      prompt: line.includes(PROMPT), text: line.replaceAll(PROMPT, ""),
    }));
    return {language: language.replace("language-", ""), lines,
            title: (block.querySelector(".filename") || {}).textContent || "",
            module: block.dataset.example || "", kind: block.dataset.exampleKind || ""};
  };
  const codes = document.querySelectorAll(selector);
  codes.forEach((code, index) => code.setAttribute("data-copy-index", index));
  return codes.length;
}
"""
# One round trip per block: read what the last click copied and leave a marker for
# the next one; then reveal the next block as a reader would (open its <details>,
# select its tab), scroll it into view, find its copy button and say where to click.
STEP = """
async ([nothing, index]) => {
  const copied = await navigator.clipboard.readText();
  await navigator.clipboard.writeText(nothing);
  if (index === null) return {copied};
  const code = document.querySelector(`[data-copy-index="${index}"]`);
  for (let node = code; node; node = node.parentElement) {
    if (node.tagName === "DETAILS") node.open = true;
    if (node.classList && node.classList.contains("tabbed-block")) {
      const set = node.closest(".tabbed-set");
      const input = set.querySelectorAll(":scope > input")[
          [...node.parentElement.children].indexOf(node)];
      if (input) input.checked = true;
    }
  }
  code.scrollIntoView({block: "center"});
  const selector = ":scope > .md-code__nav > button.md-code__button[data-md-type='copy']";
  const button = code.parentElement.querySelector(selector);
  const block = window.__describeBlock(code);
  if (!button) return {copied, block, visible: false};
  button.scrollIntoView({block: "center"});
  const box = button.getBoundingClientRect();
  return {copied, block, visible: button.checkVisibility(),
          x: box.left + box.width / 2, y: box.top + box.height / 2};
}
"""


@pytest.fixture(scope="module")
def clipboard_page(browser, site_url):
    """One browser context with clipboard permissions for this worker's share of pages."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  base_url=site_url)
    requests = record_requests(context)
    yield context.new_page(), requests
    context.close()


def copy_every_block(page, path: str) -> list[dict]:
    """Every code block of one page: what it shows and what its copy button copied."""
    page.goto(path, wait_until="load")
    count = page.evaluate(PREPARE, CODE_BLOCKS)
    step = page.evaluate(STEP, [NOTHING, 0 if count else None])
    blocks = []
    for index in range(count):
        if step["visible"]:
            page.mouse.click(step["x"], step["y"])  # a real click, as a reader's
        block, visible = step["block"], step["visible"]
        step = page.evaluate(STEP, [NOTHING, index + 1 if index + 1 < count else None])
        blocks.append({**block, "page": f"/{path}", "visible": visible, "copied": step["copied"]})
    return blocks


def expected_copy(block: dict) -> str:
    """What a reader should get: the shown text; for a session, the commands alone."""
    lines = block["lines"]
    if block["language"] in SESSION_LANGS and any(line["prompt"] for line in lines):
        lines = [line for line in lines if line["prompt"]]
    return "\n".join(line["text"] for line in lines).rstrip()


def where(block: dict) -> str:
    return f"{block['page']} [{block['language']}: {block['title'] or 'untitled'}]"


def wrong_copies(block: dict) -> list[str]:
    """What is wrong with one block's copy, if anything."""
    wrong = []
    if not block["visible"]:
        wrong.append(f"{where(block)}: a copy button a reader cannot see")
    if block["copied"] != expected_copy(block):
        wrong.append(f"{where(block)}: copied {block['copied'][:120]!r}, "
                     f"expected {expected_copy(block)[:120]!r}")
    if block["language"] in PYTHON_LANGS:
        if not block["module"]:
            wrong.append(f"{where(block)}: a Python block that is not an example")
        else:
            module = module_as_shown(SNIPPETS / block["module"])
            if block["kind"] == "excerpt" and not contains_dedented(module, block["copied"]):
                wrong.append(f"{where(block)}: excerpt not found in {block['module']}")
            elif block["kind"] == "whole" and block["copied"] != module:
                wrong.append(f"{where(block)}: not the full text of {block['module']}")
    if block["language"] in SESSION_LANGS:
        commands = [line["text"] for line in block["lines"] if line["prompt"]]
        if block["copied"].startswith(("$ ", "# ", ">>> ")) or \
                block["copied"] != "\n".join(commands).rstrip():
            wrong.append(f"{where(block)}: a session must copy its commands alone")
    return wrong


@pytest.mark.parametrize("path", PAGES)
def test_every_copy_button_of_the_page_copies_what_its_block_shows(
        clipboard_page, built_site, site_url, path):
    """Each block of the page, revealed as a reader reveals it, clicked: a whole module
    copies exactly its module (it names it, data-example), an excerpt a run of its
    lines, a console session its commands without prompts or output, anything else
    what it shows."""
    page, requests = clipboard_page
    blocks = copy_every_block(page, path)
    html = (built_site / path / "index.html").read_text(encoding="utf-8")
    assert len(blocks) == html.count("<pre id=\"__code_"), "a code block without its copy button"
    wrong = [problem for block in blocks for problem in wrong_copies(block)]
    assert not wrong, "\n".join(wrong)
    assert_same_origin(requests, site_url)


def test_the_site_has_every_kind_of_code_block_to_copy(built_site):
    text = "".join(p.read_text(encoding="utf-8") for p in html_pages(built_site))
    assert text.count("<pre id=\"__code_") >= 500
    for kind in ("language-python", "language-text", "language-console"):
        assert kind in text, kind


def test_the_copy_button_yields_exactly_the_runnable_module(page):
    page.goto("fundamentals/core_concepts/")
    block = page.locator("div.language-python.highlight", has=page.locator(
        ".filename", has_text="core_concepts_message_kinds.py")).first
    block.hover()
    block.locator("button.md-code__button[data-md-type='copy']").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    expected = module_as_shown(SNIPPETS / "fundamentals" / "core_concepts_message_kinds.py")
    assert copied.rstrip("\n") == expected
    done = run_as_reader(copied)
    assert done.returncode == 0, done.stderr
    assert "rejected: sessions_per_week must be 1..14, got 30" in done.stdout
