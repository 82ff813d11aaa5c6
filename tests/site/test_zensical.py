"""The site also builds with Zensical, Material for MkDocs' successor, and that build
passes the same link and offline checks.

Zensical reads `mkdocs.yml` but runs no MkDocs hooks, and this site's hooks do
real work: they run the examples and put their output on the page, generate
the code-reference pages and the event catalogue, and point the theme's
Mermaid loader at the copy this site serves. So the test stages the sources
first: MkDocs's own machinery loads the config and runs every hook's
``on_config``, ``on_files``, ``on_nav`` and ``on_page_markdown``, and the
resulting Markdown (what MkDocs would render) is written to a staging
directory. Zensical then builds that, and the Mermaid address in Zensical's
bundle is rewritten as `docs/_hooks/build.py` does for Material's.

Differences from the MkDocs build, on purpose:

* `theme.custom_dir` is dropped: `overrides/` holds copies of Material 9.8's
  partials, and Zensical's differ (its search dialog is a different widget,
  already named for screen readers).
* Hooks that rewrite the HTML (``on_page_content``, ``on_post_build``) do not
  run: in this site they add the Run buttons (docs/_hooks/pyodide.py), publish
  Pyodide, and build in the copy buttons, table wrappers and code line counts
  that stand in for Material's script (docs/_hooks/speed.py); Zensical's own
  script does those in the browser.

Zensical is pinned at 0.0.73: 0.0.74 and later (0.1.x) require `zensical-ui`,
which PyPI does not serve.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import serve
from tests.site import test_built_site as contract
from tests.site.conftest import assert_same_origin, record_requests
from tests.site.pages import url_path

ROOT = Path(__file__).resolve().parents[2]
MERMAID_CDN = re.compile(r'"https://unpkg\.com/mermaid@\d+/dist/mermaid\.min\.js"')
MERMAID_LOCAL = 'new URL("assets/vendor/mermaid/mermaid.min.js",__md_scope).href'

# Run in a fresh interpreter (MkDocs loads hook modules and configures logging).
STAGE = textwrap.dedent('''
    import sys, yaml
    from pathlib import Path
    from mkdocs.config import load_config
    from mkdocs.structure.files import InclusionLevel, get_files, set_exclusions
    from mkdocs.structure.nav import get_navigation
    from mkdocs.structure.pages import Page

    stage = Path(sys.argv[1])
    config = load_config("mkdocs.yml")
    config.plugins.on_startup(command="build", dirty=False)
    config = config.plugins.on_config(config)
    config.plugins.on_pre_build(config=config)
    files = get_files(config)
    files = config.plugins.on_files(files, config=config)
    set_exclusions(files, config)
    nav = config.plugins.on_nav(get_navigation(files, config), config=config, files=files)
    for file in files:
        target = stage / "docs" / file.src_uri
        target.parent.mkdir(parents=True, exist_ok=True)
        if not file.is_documentation_page():
            target.write_bytes(file.content_bytes)
            continue
        if not file.inclusion.is_included():
            continue
        if file.page is None:
            Page(None, file, config)
        page = file.page
        page = config.plugins.on_pre_page(page, config=config, files=files)
        page.read_source(config)
        markdown = config.plugins.on_page_markdown(page.markdown, page=page, config=config,
                                                   files=files)
        meta = yaml.safe_dump(page.meta, allow_unicode=True, sort_keys=False) if page.meta else ""
        target.write_text((f"---\\n{meta}---\\n\\n" if meta else "") + markdown, encoding="utf-8")
''')


def zensical_command() -> list[str]:
    try:
        import zensical  # noqa: F401
    except ImportError:
        pytest.skip("Zensical is not installed: pip install -r requirements.txt")
    return [sys.executable, "-m", "zensical"]


def staged_config() -> str:
    """mkdocs.yml for the staged sources: docs/ and site/ there, no Material overrides."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    text = re.sub(r"^  custom_dir: .*\n", "", text, flags=re.MULTILINE)
    text = re.sub(r"^docs_dir: .*$", "docs_dir: docs\nsite_dir: site", text, flags=re.MULTILINE)
    return text


@pytest.fixture(scope="module")
def zensical_site(tmp_path_factory) -> Path:
    """A Zensical build of the site, staged as the module docstring says."""
    command = zensical_command()
    stage = tmp_path_factory.mktemp("zensical")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-c", STAGE, str(stage)], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"staging with MkDocs's hooks failed:\n{done.stderr[-3000:]}"
    shutil.copytree(ROOT / "snippets", stage / "snippets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (stage / "mkdocs.yml").write_text(staged_config(), encoding="utf-8")
    done = subprocess.run([*command, "build", "--clean", "-f", "mkdocs.yml"], check=False, cwd=stage,
                          env={**env, "NO_COLOR": "1"}, capture_output=True, text=True,
                          timeout=600)
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, f"zensical build failed:\n{output[-3000:]}"
    warnings = [line for line in output.splitlines() if line.startswith(("Warning", "Error"))]
    assert not warnings, "Zensical warns about the site:\n" + output[-3000:]
    site = stage / "site"
    bundles = list((site / "assets" / "javascripts").glob("bundle.*.min.js"))
    assert bundles, "no Zensical bundle found"
    for bundle in bundles:
        text = bundle.read_text(encoding="utf-8")
        assert MERMAID_CDN.search(text), f"{bundle.name}: Mermaid CDN address not found"
        bundle.write_text(MERMAID_CDN.sub(MERMAID_LOCAL, text), encoding="utf-8")
    return site


def test_zensical_builds_every_page_that_mkdocs_builds(zensical_site, built_site):
    ours = {p.relative_to(built_site) for p in built_site.rglob("index.html")}
    theirs = {p.relative_to(zensical_site) for p in zensical_site.rglob("index.html")}
    assert ours - theirs == set(), f"pages missing from the Zensical build: {sorted(ours - theirs)}"


def test_the_zensical_build_shows_the_examples_output(zensical_site):
    outputs = list(zensical_site.rglob("index.html"))
    assert sum("ed-output" in p.read_text(encoding="utf-8") for p in outputs) >= 5


def test_every_internal_link_and_anchor_of_the_zensical_build_resolves(zensical_site):
    contract.test_every_internal_link_and_anchor_resolves(zensical_site)


def test_no_page_of_the_zensical_build_loads_anything_from_another_origin(zensical_site):
    contract.test_no_page_loads_anything_from_another_origin(zensical_site)


@pytest.mark.browser
def test_the_zensical_build_requests_nothing_outside_the_site_in_a_browser(
        browser, zensical_site):
    """The pages in Chromium: no request may leave the origin (Zensical's bundle falls
    back to CDNs for Mermaid and others); diagrams arrive drawn, as in the MkDocs build."""
    # The theme's scripts are the same on every page; what a page has decides what
    # they fetch. So: each chapter's index and its largest page, which has the most
    # kinds of content (tabs, diagrams, tables, outputs).
    chapters: dict[str, list[Path]] = {}
    for p in zensical_site.rglob("index.html"):
        chapter = "" if p.parent == zensical_site else p.relative_to(zensical_site).parts[0]
        chapters.setdefault(chapter, []).append(p)
    chosen = {zensical_site / "index.html", *zensical_site.glob("*/index.html"),
              *(max(pages, key=lambda p: p.stat().st_size) for pages in chapters.values())}
    paths = sorted(url_path(zensical_site, p) for p in chosen)
    with serve(zensical_site) as url:
        context = browser.new_context(base_url=url)
        requests = record_requests(context)
        page = context.new_page()
        diagram_pages = 0
        for path in paths:
            page.goto(path, wait_until="load")
            diagram_pages += page.locator(".ed-diagram svg").count() > 0
        page.wait_for_load_state("networkidle")
        context.close()
    assert_same_origin(requests, url)
    assert len(paths) >= 20 and diagram_pages >= 10
    assert not any("mermaid" in u for u in requests), "a page ran Mermaid in the browser"
