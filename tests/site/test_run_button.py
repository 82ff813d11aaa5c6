"""The Run buttons: examples run in the reader's browser (Pyodide) and print what the build printed.

The checks on the built HTML need no browser; the rest drive Chromium. Every press of
Run gets a fresh interpreter: the first on a page starts Python from scratch (about 5 s
of CPU), later ones start from a snapshot of it (well under 1 s). So the browser tests
press Run sparingly, and run every example of the site in one interpreter through the
page's ``eddRun.session()``.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitebuild.facts import CHAPTERS as CHAPTER_TITLES
from sitebuild.facts import ENGINE_VARS
from sitebuild.pyodide import CORE as VENDOR
from tests.site.pages import examples, html_pages
from tests.site.test_built_site import output_blocks

CHAPTERS = list(CHAPTER_TITLES)
FINAL = "b => !['idle', 'starting', 'running'].includes(b.dataset.state)"
SAVED = """() => new Promise(found => {
  const open = indexedDB.open("edd-run", 1);
  open.onupgradeneeded = () => open.result.createObjectStore("snapshots");
  open.onsuccess = () => {
    const keys = open.result.transaction("snapshots").objectStore("snapshots").getAllKeys();
    keys.onsuccess = () => { open.result.close(); found(keys.result.length > 0); };
  };
})"""
STDOUT = ("b => [...b.nextElementSibling.querySelector('code').childNodes]"
          ".filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join('')")
FAILING = '''\
"""Fails on purpose, leaving a task behind that would print forever."""

import asyncio


async def chatter() -> None:
    while True:
        print("LEAKED from the failed run")
        await asyncio.sleep(0)


async def main() -> None:
    print("looking up goal 42")
    asyncio.get_running_loop().create_task(chatter())
    await asyncio.sleep(0.01)
    raise LookupError("no goal with id 42")


if __name__ == "__main__":
    asyncio.run(main())
'''
ENDLESS = '''\
"""Never finishes: a busy loop that never yields to anyone."""

import time


def main() -> None:
    tick = 0
    while True:
        tick += 1
        print(f"tick {tick}", flush=True)
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass


if __name__ == "__main__":
    main()
'''


# --- The built HTML -----------------------------------------------------------
# The examples come from examples.json; the bar or note under each, and the
# build-time outputs, are read with regular expressions: the pages with code
# weigh about 7 MB of highlighted HTML, which BeautifulSoup takes 15 s to parse.

BLOCK = re.compile(
    r'<div class="language-python highlight" data-example="(?P<module>[^"]+)" '
    r'data-example-kind="whole"[^>]*>.*?<pre\b[^>]*>(?P<pre>.*?)</pre></div>\s*'
    r'(?P<after><div\b[^>]*>|<p\b[^>]*>[^<]*</p>)?', re.DOTALL)


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


@dataclass(frozen=True)
class Block:
    """A whole-module Python block of a page and the element the build put after it."""

    page: str
    snippet: str
    code: str
    after: str  # "run", "note" or "" (neither)
    after_snippet: str
    note: str
    needs: str  # "stack-switching" when its asyncio.run() cannot be awaited by the runner
    verdict: str  # the manifest's: "yes", "stack-switching" or "no"


@pytest.fixture(scope="module")
def site_blocks(built_site) -> tuple[list[Block], dict[str, dict[str, str]]]:
    """Every whole-module block of the site, and per page URL its build-time outputs."""
    listed: dict[str, dict[str, str]] = {}
    for entry in examples(built_site):
        if entry["kind"] == "whole":
            listed.setdefault(entry["page"], {})[entry["module"]] = entry["run"]
    outputs: dict[str, dict[str, str]] = {}
    for page, module, printed in output_blocks(built_site, recorded=False):
        outputs.setdefault(str(page).removesuffix("index.html"), {})[module] = printed
    blocks = []
    for url, verdicts in listed.items():
        text = (built_site / url / "index.html").read_text(encoding="utf-8")
        outputs.setdefault(url, {})
        found = {m["module"]: m for m in BLOCK.finditer(text)}
        assert set(found) == set(verdicts), (url, sorted(set(found) ^ set(verdicts)))
        for module, match in found.items():
            after = match["after"] or ""
            kind = ("run" if re.match(r'<div class="ed-run"', after) else
                    "note" if re.match(r'<p class="ed-run-note"', after) else "")
            snippet = re.search(r'data-snippet="([^"]*)"', after)
            needs = re.search(r'data-needs="([^"]*)"', after)
            blocks.append(Block(url, module, text_of(match["pre"]).rstrip("\n"), kind,
                                snippet[1] if snippet else "",
                                text_of(after).strip() if kind == "note" else "",
                                needs[1] if needs else "", verdicts[module]))
    return blocks, outputs


@pytest.fixture(scope="module")
def runnable(site_blocks) -> dict[str, tuple[str, str, str]]:
    """Each module with a Run button -> (a page URL showing it, its code, its build output)."""
    blocks, outputs = site_blocks
    found: dict[str, tuple[str, str, str]] = {}
    for block in blocks:
        if block.after == "run":
            found.setdefault(block.snippet, (block.page, block.code,
                                             outputs[block.page].get(block.snippet)))
    return found


def test_the_manifest_says_what_each_bar_shows(site_blocks):
    for block in site_blocks[0]:
        assert block.after == ("note" if block.verdict == "no" else "run"), block
        assert (block.needs == "stack-switching") == (block.verdict == "stack-switching"), block


def test_every_whole_module_block_has_a_run_button_or_says_why_not(site_blocks):
    blocks, _ = site_blocks
    assert len(blocks) >= 20
    for block in blocks:
        assert block.after, f"{block.page}: {block.snippet} has neither a Run bar nor a note"
        assert block.after_snippet == block.snippet
        assert block.after == "run" or block.note.startswith(
            ("Needs ", "Starts ", "Opens ", "Runs ", "This page", "Run is")), block


def test_examples_that_need_an_engine_say_which_and_offer_no_run_button(site_blocks):
    checked = 0
    for block in site_blocks[0]:
        engines = {name for var, name in ENGINE_VARS.items() if var in block.code}
        if engines:
            assert block.after == "note", f"{block.page}: {block.snippet} offers Run"
            assert block.note.startswith("Needs ") and all(e in block.note for e in engines)
            checked += 1
    assert checked >= 5


def test_a_run_button_only_where_the_page_shows_the_build_time_output(site_blocks, runnable):
    blocks, outputs = site_blocks
    assert len(runnable) >= 20
    for block in blocks:
        if block.after == "run":
            assert block.snippet in outputs[block.page], (block.page, block.snippet)


def test_pyodide_is_served_by_the_site_and_loaded_by_no_page_up_front(built_site):
    vendor = built_site / "assets" / "vendor" / "pyodide"
    assert (vendor / "pyodide.asm.wasm").stat().st_size > 5_000_000
    assert all((vendor / name).is_file() for name in VENDOR)
    assert "Mozilla Public License" in (vendor / "NOTICE.txt").read_text()
    for page in html_pages(built_site):
        html = page.read_text(encoding="utf-8")
        assert "vendor/pyodide" not in html and "pyodide.mjs" not in html, page


# --- In Chromium --------------------------------------------------------------

@pytest.fixture(scope="module")
def context(browser, site_url):
    """One browser context for the module: its HTTP cache saves re-reading 13 MB, and
    its IndexedDB keeps the interpreter snapshot from one test to the next."""
    context = browser.new_context(base_url=site_url, color_scheme="light")
    context.set_default_timeout(60_000)
    yield context
    context.close()


@pytest.fixture
def page(context, site_url):
    """A fresh tab that fails the test if any request leaves the site's origin."""
    page = context.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    page.close()
    foreign = [u for u in page.requests if not u.startswith((site_url, "data:", "blob:"))]
    assert not foreign, f"requests left the site's origin: {foreign}"


def navigate(page, url: str) -> None:
    """Click a link to the site's ``url``, as a reader does (a page load: the site has
    no instant navigation)."""
    page.evaluate("url => { const link = document.createElement('a');"
                  " link.href = new URL(url, __md_scope).href;"
                  " document.querySelector('.md-content').append(link); link.click(); }", url)
    page.wait_for_url(f"**/{url}")


def first_bar(page):
    """The first Run bar of the page that a reader sees without opening anything, if any."""
    page.wait_for_function("() => window.eddRun")  # run.js has loaded: its listener is on
    bars = page.locator(".ed-run[data-snippet]")
    bars.first.wait_for(state="attached")
    assert bars.first.get_attribute("data-state") == "idle"
    visible = page.locator(".ed-run[data-snippet]:visible")
    return visible.first if visible.count() else bars.first


def displayed(locator) -> bool:
    """Whether CSS shows an element (inside a closed <details> or not)."""
    return locator.evaluate("e => getComputedStyle(e).display !== 'none'")


def press_run(page, bar):
    """Press a bar's Run button and wait for the run to end; return its state."""
    details = bar.locator("xpath=ancestor::details[not(@open)]")
    if details.count():
        details.first.locator("summary").first.click()
    bar.locator(".ed-run__start").click()
    handle = bar.element_handle()
    page.wait_for_function(FINAL, arg=handle, timeout=120_000)
    return bar.get_attribute("data-state")


def replace_code(page, bar, source: str) -> str:
    """Show other code in the block above a bar (Run runs what is shown); return the old HTML."""
    return bar.evaluate("(b, s) => { const c = b.previousElementSibling.querySelector('pre > code');"
                        " const old = c.innerHTML; c.textContent = s; return old; }", source)


@pytest.mark.browser
def test_pressing_run_prints_what_the_build_printed_in_each_chapter(page, runnable):
    """For each chapter: go to one of its pages, press Run, compare with the build's output.
    The first run starts Python from scratch and keeps a snapshot of it in IndexedDB, from
    which the first run on every later page starts."""
    page.goto("")
    page.evaluate("() => new Promise(done => { indexedDB.deleteDatabase('edd-run').onsuccess = done; })")
    loaded_before_a_press = []
    chapters_run = []
    for chapter in CHAPTERS:
        pages = sorted({url for url, _, _ in runnable.values() if url.startswith(f"{chapter}/")})
        if not pages:
            continue  # a chapter whose examples all need engines or packages (or none yet)
        url = pages[0]
        page.requests.clear()
        navigate(page, url)
        bar = first_bar(page)
        loaded_before_a_press += [u for u in page.requests if "/vendor/pyodide/" in u]
        relative = bar.get_attribute("data-snippet")
        assert press_run(page, bar) == "done", bar.locator(".ed-run__status").inner_text()
        assert bar.get_attribute("data-started") == ("snapshot" if chapters_run else "scratch")
        assert bar.get_attribute("data-match") == "true"
        assert bar.evaluate(STDOUT).rstrip("\n") == runnable[relative][2]
        assert "the same output as when this page was built" in bar.inner_text()
        if os.environ.get("EDD_SCREENSHOTS"):  # for a human to look at
            Path(os.environ["EDD_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
            bar.scroll_into_view_if_needed()
            page.screenshot(path=f"{os.environ['EDD_SCREENSHOTS']}/run_{chapter}.png")
        if not chapters_run:
            page.wait_for_function(SAVED, polling=100)
        chapters_run.append(chapter)
    assert len(chapters_run) >= 5, chapters_run
    assert not loaded_before_a_press, "Pyodide loaded before anyone pressed Run"


@pytest.mark.browser
def test_a_failing_example_shows_a_readable_traceback_and_the_next_run_starts_clean(page, runnable):
    page.goto("fundamentals/core_concepts/")
    bar = first_bar(page)
    relative = bar.get_attribute("data-snippet")
    name = relative.split("/")[-1]
    original = replace_code(page, bar, FAILING)
    assert press_run(page, bar) == "failed"
    output = bar.locator("xpath=following-sibling::div[1]").inner_text()
    assert "looking up goal 42" in output and "LEAKED" in output
    traceback = bar.locator("xpath=following-sibling::div[1]//span[@class='ed-run__traceback']"
                            ).inner_text()
    assert traceback.startswith("Traceback (most recent call last):")
    assert f'File "/examples/{name}", line 16, in main' in traceback
    assert 'raise LookupError("no goal with id 42")' in traceback
    assert traceback.rstrip().endswith("LookupError: no goal with id 42")
    assert "edd_run" not in traceback and "<exec>" not in traceback  # no frames of the runner
    assert "Failed with LookupError" in bar.inner_text()

    bar.evaluate("(b, html) => b.previousElementSibling.querySelector('pre > code')"
                 ".innerHTML = html", original)
    assert press_run(page, bar) == "done"
    assert bar.get_attribute("data-started") == "snapshot"  # a fresh copy of a new interpreter
    assert bar.get_attribute("data-match") == "true"
    output = bar.locator("xpath=following-sibling::div[1]").inner_text()
    assert "LEAKED" not in output and "Traceback" not in output
    assert bar.evaluate(STDOUT).rstrip("\n") == runnable[relative][2]


@pytest.mark.browser
def test_stop_ends_an_endless_run_while_the_page_stays_responsive(page):
    page.goto("fundamentals/core_concepts/")
    bar = first_bar(page)
    replace_code(page, bar, ENDLESS)
    bar.locator(".ed-run__start").click()
    output = bar.locator("xpath=following-sibling::div[1]//code")
    # Output streams in while the loop runs, and the page still answers: Python is in a worker.
    page.wait_for_function("o => o.textContent.includes('tick 3')", arg=output.element_handle())
    assert bar.get_attribute("data-state") == "running"
    assert page.evaluate("() => new Promise(done => requestAnimationFrame(() => done(true)))")
    assert bar.locator(".ed-run__start").is_disabled()
    bar.locator(".ed-run__stop").click()
    page.wait_for_function(FINAL, arg=bar.element_handle())
    assert bar.get_attribute("data-state") == "stopped"
    assert "Stopped after" in bar.locator(".ed-run__status").inner_text()
    assert bar.locator(".ed-run__stop").is_disabled() and bar.locator(".ed-run__start").is_enabled()
    assert output.inner_text().startswith("tick 1\ntick 2\ntick 3")


@pytest.mark.browser
def test_a_damaged_saved_snapshot_is_replaced_and_run_still_works(page, runnable):
    page.goto("fundamentals/core_concepts/")
    page.evaluate("""() => new Promise(done => {
      const open = indexedDB.open("edd-run", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("snapshots");
      open.onsuccess = () => {
        const junk = new Blob([new Uint8Array(4096).fill(7)]);
        const put = open.result.transaction("snapshots", "readwrite").objectStore("snapshots")
          .put(junk, "314.0.7");
        put.onsuccess = () => { open.result.close(); done(); };
      };
    })""")
    bar = first_bar(page)
    assert press_run(page, bar) == "done", bar.locator(".ed-run__status").inner_text()
    assert bar.get_attribute("data-started") == "scratch"
    assert bar.evaluate(STDOUT).rstrip("\n") == runnable[bar.get_attribute("data-snippet")][2]
    page.wait_for_function(SAVED, polling=100)  # a good snapshot took the junk's place


@pytest.mark.browser
def test_without_stack_switching_nested_asyncio_run_gets_a_note_instead(page, site_blocks):
    """asyncio.run() from synchronous code needs WebAssembly stack switching (JSPI),
    which this Chromium has and Firefox and Safari lack: simulate such a browser."""
    needing = [b for b in site_blocks[0] if b.needs == "stack-switching"]
    if not needing:
        pytest.skip("no example calls asyncio.run() from synchronous code")
    bar_of = f'.ed-run[data-snippet="{needing[0].snippet}"]'
    note_of = f'.ed-run-note[data-snippet="{needing[0].snippet}"]'
    page.goto(needing[0].page)  # this Chromium has it: the bar shows, not the note
    assert displayed(page.locator(bar_of).first)
    assert not displayed(page.locator(note_of).first)

    page.add_init_script("delete WebAssembly.Suspending")
    page.goto(needing[0].page)
    note = page.locator(note_of).first
    assert displayed(note)  # the bar gives way to the note after it
    assert "stack switching" in note.text_content()
    assert not [b for b in page.locator(bar_of).all() if displayed(b)]


@pytest.mark.browser
def test_the_bars_show_with_no_script_setting_them_up(page, runnable):
    """run.js does no work on the page when it loads (on a long page that was a long
    task on a phone): the bars show without it, from the HTML and CSS alone."""
    page.route("**/assets/javascripts/run.js", lambda route: route.abort())
    page.goto(min(url for url, _, _ in runnable.values()))
    assert page.evaluate("() => typeof window.eddRun") == "undefined"
    bar = page.locator('.ed-run[data-state="idle"]').first
    assert displayed(bar) and bar.locator(".ed-run__start").is_enabled()


@pytest.mark.browser
def test_without_javascript_no_run_button_shows(browser, site_url, site_blocks):
    """The bars are in the page as built, shown by CSS wherever scripts run; where they
    do not, a Run button would be dead, so none may show (nor the note about stack
    switching, which only a script can know is true), while the other notes still do."""
    pages = sorted({b.page for b in site_blocks[0] if b.after == "run"})
    needing = sorted({b.page for b in site_blocks[0] if b.needs == "stack-switching"})
    noted = sorted({b.page for b in site_blocks[0] if b.after == "note"})
    context = browser.new_context(base_url=site_url, java_script_enabled=False)
    try:
        page = context.new_page()
        for url in {pages[0], *needing[:1], *noted[:1]}:
            page.goto(url)
            bars = page.locator(".ed-run").all()
            assert not [b for b in bars if displayed(b)], f"{url}: a Run bar shows without JavaScript"
            for note in page.locator(".ed-run-note").all():
                assert displayed(note) != (note.get_attribute("data-needs") == "stack-switching"), url
        page.goto(pages[0])
        assert page.locator(".ed-run").count()
    finally:
        context.close()


@pytest.mark.browser
def test_every_runnable_example_prints_in_pyodide_what_it_printed_at_build(page, runnable):
    """Pyodide runs Python 3.14 while the project supports 3.11 onwards: every example
    with a Run button runs here, in one interpreter, and must print what the build printed."""
    page.goto("fundamentals/")
    jobs = [{"snippet": relative, "source": source, "filename": relative.split("/")[-1]}
            for relative, (_, source, _) in sorted(runnable.items())]
    results = page.evaluate("""async jobs => {
        let python = eddRun.session();
        const results = [];
        for (const job of jobs) {
          await python.ready;
          let stdout = "", stderr = "", timer = 0, t0 = performance.now();
          const limit = new Promise(done => { timer = setTimeout(() => done(
            { status: "timeout", code: null, traceback: "still running after 30 s" }), 30000); });
          const result = await Promise.race([limit, python.run(job.source, job.filename,
            (type, text) => { if (type === "stdout") stdout += text; else stderr += text; })]);
          clearTimeout(timer);
          results.push({ ...result, stdout, stderr, python: python.info.python,
                         ms: Math.round(performance.now() - t0) });
          if (result.status === "timeout") { python.terminate(); python = eddRun.session(); }
        }
        python.terminate();
        return results;
    }""", jobs)
    assert {r["python"] for r in results} == {results[0]["python"]}
    assert results[0]["python"].startswith("3.14")
    failures = []
    for job, result in zip(jobs, results):
        expected = runnable[job["snippet"]][2]
        if result["status"] != "ok":
            failures.append(f"{job['snippet']}: {result['status']} {result.get('code')}\n"
                            f"{result['traceback'] or result['stderr'][-1500:]}")
        elif result["stdout"].rstrip("\n") != expected:
            failures.append(f"{job['snippet']}: output differs from the build's\n"
                            + first_difference(expected, result["stdout"].rstrip("\n")))
    assert not failures, f"{len(failures)} of {len(jobs)} examples fail in Pyodide " + (
        f"(Python {results[0]['python']}):\n\n" + "\n\n".join(failures))


def first_difference(expected: str, got: str) -> str:
    for number, (want, have) in enumerate(zip(expected.splitlines(), got.splitlines()), 1):
        if want != have:
            return f"  line {number}: build printed {want!r}\n  line {number}: Pyodide printed {have!r}"
    return (f"  build printed {len(expected.splitlines())} lines, "
            f"Pyodide {len(got.splitlines())}")
