"""Copy in the browser: every copy button on every page puts the runnable source on
the clipboard, and nothing else (no prompts, no output).

One browser context with clipboard permissions visits each page once. On each page
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
    PYTHON_LANGS,
    SNIPPETS,
    contains_dedented,
    module_as_shown,
    site_pages,
)

# The first test also pays for visiting every page (the module-scoped fixture).
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]

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
def copied(browser, built_site, site_url):
    """Every code block of the site: what it shows and what its copy button copied."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  base_url=site_url)
    requests = record_requests(context)
    page = context.new_page()
    blocks = []
    for path in site_pages(built_site):
        page.goto(path, wait_until="load")
        count = page.evaluate(PREPARE, CODE_BLOCKS)
        step = page.evaluate(STEP, [NOTHING, 0 if count else None])
        for index in range(count):
            if step["visible"]:
                page.mouse.click(step["x"], step["y"])  # a real click, as a reader's
            block, visible = step["block"], step["visible"]
            step = page.evaluate(STEP, [NOTHING, index + 1 if index + 1 < count else None])
            blocks.append({**block, "page": f"/{path}", "visible": visible,
                           "copied": step["copied"]})
    context.close()
    assert_same_origin(requests, site_url)
    return blocks


def expected_copy(block: dict) -> str:
    """What a reader should get: the shown text; for a session, the commands alone."""
    lines = block["lines"]
    if block["language"] in SESSION_LANGS and any(line["prompt"] for line in lines):
        lines = [line for line in lines if line["prompt"]]
    return "\n".join(line["text"] for line in lines).rstrip()


def where(block: dict) -> str:
    return f"{block['page']} [{block['language']}: {block['title'] or 'untitled'}]"


def test_the_site_has_code_blocks_with_copy_buttons(copied):
    assert len(copied) >= 50
    assert {b["language"] for b in copied} >= {"python", "text", "console"}


def test_every_copy_button_copies_what_its_block_shows_without_markers(copied):
    wrong = [f"{where(b)}: copied {b['copied'][:120]!r}, expected {expected_copy(b)[:120]!r}"
             for b in copied if b["copied"] != expected_copy(b)]
    assert not wrong, f"{len(wrong)} block(s) copy the wrong text:\n" + "\n".join(wrong[:20])


def test_every_copy_button_can_be_reached_by_a_reader(copied):
    hidden = [where(b) for b in copied if not b["visible"]]
    assert not hidden, "copy buttons a reader cannot see:\n" + "\n".join(hidden)


def test_every_python_block_copies_its_module_or_a_verbatim_excerpt_of_it(copied):
    """Each Python block names its module (data-example, from the build); a whole one
    copies exactly that module, an excerpt a run of its lines."""
    wrong = []
    python = [b for b in copied if b["language"] in PYTHON_LANGS]
    assert len(python) >= 100
    for block in python:
        if not block["module"]:
            wrong.append(f"{where(block)}: a Python block that is not an example")
            continue
        module = module_as_shown(SNIPPETS / block["module"])
        if block["kind"] == "excerpt":
            if not contains_dedented(module, block["copied"]):
                wrong.append(f"{where(block)}: excerpt not found in {block['module']}")
        elif block["copied"] != module:
            wrong.append(f"{where(block)}: not the full text of {block['module']}")
    assert not wrong, "\n".join(wrong)


def test_console_blocks_copy_commands_without_prompts_or_output(copied):
    sessions = [b for b in copied if b["language"] in SESSION_LANGS]
    assert sessions, "expected at least one console block (docs/about.md has one)"
    for block in sessions:
        assert not block["copied"].startswith(("$ ", "# ", ">>> ")), where(block)
        commands = [line["text"] for line in block["lines"] if line["prompt"]]
        assert block["copied"] == "\n".join(commands).rstrip(), where(block)


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
