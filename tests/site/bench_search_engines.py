"""Three search engines side by side on the same site and the same outside queries.

Run with `make bench BENCH=search_engines`. It builds the site strictly into a temporary
directory (or takes the build in EDD_BENCH_SITE), serves it on 127.0.0.1 as a static
host would (gzip for text), and runs every query of `tests/site/search_eval.yml` (gathered
outside the site, split once into a tuning and a held-out half) through:

* **lunr**, Material's search worker, as the site uses it today: typed into the site's
  search box;
* **Pagefind** 1.5.2 (PyPI `pagefind[bin]`, installed on first use into the git-ignored
  `node_modules/.bench-tools/`), indexing each page's article, with its default ranking,
  through its JavaScript API;
* **MiniSearch** 7.2.0 (the npm tarball, pinned by its sha512 and fetched on first use),
  over the same documents as lunr (each page and each of its sections, code included),
  with its BM25 ranking, any word of the query enough (OR), prefix and fuzzy matching
  (20 % of a word's letters), titles weighed 3 and tags 2.

For each: hit@1, hit@3 and MRR over the pages expected (queries the site does not cover
are left out of these), on each half; and, in a fresh browser context with nothing
cached, the bytes transferred (compressed) and the time from the first key press (or,
for the two not built into the page, from the call) to the first results, median over
seven queries. It writes `docs/data/bench/site/search_engines.json`, which the About page
renders. The numbers choose the engine; tuning happens afterwards, on the tuning half.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from sitebuild.facts import CHROMIUM, CHROMIUM_ARGS
from tests.bench import support
from tests.conftest import serve
from tests.site.bench_lighthouse import build
from tests.site.conftest import WATCH_SEARCH, search_results

ROOT = Path(__file__).resolve().parents[2]
QUERIES = yaml.safe_load((Path(__file__).with_name("search_eval.yml")).read_text())
TOOLS = ROOT / "node_modules" / ".bench-tools"
PAGEFIND = "pagefind[bin]==1.5.2"
MINISEARCH = ("https://registry.npmjs.org/minisearch/-/minisearch-7.2.0.tgz",
              "sha512-dqT2XBYUOZOiC5t2HRnwADjhNS2cecp9u+TJRiJ1Qp/f5qjkeT5APcGPjHw+bz89Ms8Jp+cG4AlE+QZ/QnDglg==")
ARTICLE = "article.md-content__inner"
TIMED = ["event bus", "idempotent consumer", "outbox", "dead letter queue",
         "schema evolution", "snapshot", "how do I replay events"]
MINISEARCH_OPTIONS = {"combineWith": "OR", "prefix": True, "fuzzy": 0.2,
                      "boost": {"title": 3, "tags": 2}}

# Each engine's JavaScript: `load` gets it ready (index fetched and built), `ask` answers
# one query with the result URLs in rank order.
PAGEFIND_JS = """
window.__engine = {
  async load() {
    this.pf = await import(new URL("pagefind/pagefind.js", document.baseURI).href);
    await this.pf.init();
  },
  async ask(q) {
    const found = await this.pf.search(q);
    return (await Promise.all(found.results.slice(0, 8).map(r => r.data()))).map(d => d.url);
  },
};
"""
MINISEARCH_JS = """
window.__engine = {
  async load() {
    await new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = new URL("_bench/minisearch.js", document.baseURI).href;
      s.onload = resolve; s.onerror = reject;
      document.head.append(s);
    });
    const index = await (await fetch(new URL("search/search_index.json", document.baseURI))).json();
    this.ms = new MiniSearch({fields: ["title", "text", "tags"], storeFields: ["location"]});
    this.ms.addAll(index.docs.map((d, id) => ({id, location: d.location, title: d.title,
      text: d.text.replace(/<[^>]+>/g, " "), tags: (d.tags || []).join(" ")})));
  },
  async ask(q) {
    return this.ms.search(q, OPTIONS).slice(0, 40)
      .map(r => new URL(r.location, document.baseURI).pathname);
  },
};
""".replace("OPTIONS", json.dumps(MINISEARCH_OPTIONS))
RUN_ALL = """async (queries) => {
  await window.__engine.load();
  const out = {};
  for (const q of queries) out[q] = await window.__engine.ask(q);
  return out;
}"""
TIME_FIRST = """async (q) => {
  const start = performance.now();
  await window.__engine.load();
  const urls = await window.__engine.ask(q);
  return {ms: performance.now() - start, results: urls.length};
}"""


def minisearch(folder: Path) -> Path:
    """MiniSearch's browser build, from its npm tarball checked against the pinned sha512."""
    target = folder / "minisearch-7.2.0.js"
    if not target.is_file():
        url, integrity = MINISEARCH
        data = urllib.request.urlopen(url, timeout=60).read()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != integrity:
            raise ValueError("minisearch-7.2.0.tgz does not match its pinned sha512")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            member = archive.extractfile("package/dist/umd/index.js")
            assert member is not None
            folder.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
    return target


def pagefind_index(site: Path) -> None:
    """Pagefind's index of ``site``, in ``site/pagefind/``, each page's article indexed."""
    target = TOOLS / "pagefind"
    if not (target / "pagefind").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                        PAGEFIND], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-m", "pagefind", "--site", str(site), "--root-selector",
                    ARTICLE, "--silent"], check=True, env=env)


def pages(urls: list[str], base: str) -> list[str]:
    """Result URLs as the pages they are on (site-relative paths), first ten, in order."""
    found: list[str] = []
    for url in urls:
        path = url.split("#")[0].split("?")[0]
        path = path[len(base):] if path.startswith(base) else path.lstrip("/")
        if path not in found:
            found.append(path)
    return found[:10]


def scores(results: dict[str, list[str]], half: str) -> tuple[float, float, float, int]:
    """hit@1, hit@3 and MRR over the covered queries of one half, and their number."""
    covered = [q for q in QUERIES if q["half"] == half and q["expect"]]
    hit1 = hit3 = reciprocal = 0.0
    for query in covered:
        ranks = [i for i, page in enumerate(results[query["q"]]) if page in query["expect"]]
        if ranks:
            hit1 += ranks[0] == 0
            hit3 += ranks[0] < 3
            reciprocal += 1 / (ranks[0] + 1)
    n = len(covered)
    return hit1 / n, hit3 / n, reciprocal / n, n


def lunr_results(browser, url: str) -> dict[str, list[str]]:
    page = browser.new_page(base_url=url)
    page.add_init_script(WATCH_SEARCH)
    page.goto("")
    page.locator(".md-search__input").first.click()
    page.locator("input.md-search__input").press_sequentially("event", delay=20)
    page.wait_for_selector("li.md-search-result__item", timeout=60_000)
    base = page.evaluate("new URL(document.baseURI).pathname")
    box = page.locator("input.md-search__input")
    results = {}
    for query in QUERIES:
        box.fill(query["q"][:-1])
        box.press(query["q"][-1])
        results[query["q"]] = pages(search_results(page, query["q"]), base)
    page.close()
    return results


def script_results(browser, url: str, script: str) -> dict[str, list[str]]:
    page = browser.new_page(base_url=url)
    page.goto("")
    base = page.evaluate("new URL(document.baseURI).pathname")
    page.evaluate(script)
    raw = page.evaluate(RUN_ALL, [q["q"] for q in QUERIES])
    page.close()
    return {q: pages(urls, base) for q, urls in raw.items()}


def first_search(browser, url: str, query: str, script: str | None) -> tuple[float, int]:
    """Milliseconds to the first results and bytes transferred, nothing cached."""
    context = browser.new_context(base_url=url)
    context.add_init_script(WATCH_SEARCH)
    page = context.new_page()
    page.goto("")
    page.wait_for_load_state("networkidle")
    sent: list = []
    page.on("requestfinished", lambda request: sent.append(request))
    if script is None:  # the site's own search: the first key press to results shown
        page.keyboard.press("/")
        start = time.perf_counter()
        page.keyboard.type(query, delay=0)
        search_results(page, query)
        ms = (time.perf_counter() - start) * 1000
    else:
        page.evaluate(script)
        ms = page.evaluate(TIME_FIRST, query)["ms"]
    page.wait_for_timeout(200)
    transferred = sum(r.sizes()["responseBodySize"] for r in sent)
    context.close()
    return ms, transferred


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(os.environ.get("EDD_BENCH_SITE") or build(Path(tmp) / "site"))
        pagefind_index(site)
        bench = site / "_bench"
        bench.mkdir(exist_ok=True)
        (bench / "minisearch.js").write_bytes(minisearch(TOOLS).read_bytes())
        engines = [("lunr (Material's worker, the site today)", None),
                   ("Pagefind 1.5.2, default ranking", PAGEFIND_JS),
                   ("MiniSearch 7.2.0: OR, prefix, fuzzy 0.2", MINISEARCH_JS)]
        rows = []
        with serve(site, compress=True) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, script in engines:
                results = (lunr_results(browser, url) if script is None
                           else script_results(browser, url, script))
                timings = [first_search(browser, url, q, script) for q in TIMED]
                ms = statistics.median(t for t, _ in timings)
                kb = statistics.median(b for _, b in timings) / 1024
                row = [name]
                for half in ("tune", "held"):
                    hit1, hit3, mrr, _ = scores(results, half)
                    row += [f"{hit1:.1%}", f"{hit3:.1%}", f"{mrr:.3f}"]
                rows.append([*row, f"{kb:.0f}", f"{ms:.0f}"])
                print(" | ".join(rows[-1]), flush=True)
            browser.close()
    tune = sum(1 for q in QUERIES if q["half"] == "tune" and q["expect"])
    held = sum(1 for q in QUERIES if q["half"] == "held" and q["expect"])
    support.write(
        "site/search_engines",
        columns=["Engine", "Tuning hit@1", "Tuning hit@3", "Tuning MRR", "Held-out hit@1",
                 "Held-out hit@3", "Held-out MRR", "First search: KB transferred",
                 "First search: ms"],
        rows=rows, command="make bench BENCH=search_engines",
        note=(f"{len(QUERIES)} queries gathered outside the site (tests/site/search_eval.yml), "
              f"{tune} in the tuning half and {held} held out that the site covers. "
              "hit@k: the expected page is among the first k pages of results. First "
              "search: in a fresh browser context, nothing cached, gzip as a static host "
              "sends it; median over seven queries; for lunr from the first key press to "
              "the results shown, for the others from the call to the results."))


if __name__ == "__main__":
    main()
