"""MkDocs hooks around the example pipeline (sitebuild/), for what only MkDocs offers.

The pipeline itself is two Markdown extensions, ``sitebuild.examples`` and
``sitebuild.pages``, which Zensical runs too. These hooks add, for the MkDocs build:

* generated pages (the code reference) get no edit link;
* before the pages: every module a page runs (``output=run``) is run four at a
  time, so the pages find their output ready;
* per page: the page's directives are checked first, so an error names the
  page and its line in the file;
* the search index weighs a page's pattern names, their other names, its
  tags and its ``search_terms`` as its tags (`sitebuild.course.search_keywords`);
* each page's content gets in its HTML what Material's script bundle (left out
  of this site, ``overrides/main.html``) built in the browser (`sitebuild.speed`);
* after the build: ``examples.json``, the list of every example of the site
  (`sitebuild.manifest`).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError

from sitebuild import course, examples, manifest, speed


def on_files(files, config):
    """No edit link on generated pages (the code reference, the downloads): the
    repository has no such file to edit."""
    for file in files:
        if file.src_uri.startswith(("reference/", "examples/")):
            file.edit_uri = None
    return files


def on_pre_build(config) -> None:
    """Run every module a page runs, four at a time. A failure is left for the page's
    directive to report, with its message."""
    wanted = set()
    for page in Path(config["docs_dir"]).rglob("*.md"):
        try:
            wanted |= {e.module for e in examples.parse(page.read_text(encoding="utf-8"))
                       if e.output == "run"}
        except examples.DirectiveError:
            continue

    def quietly(module: str) -> None:
        try:
            examples.run(module)
        except (examples.ExampleFailed, subprocess.TimeoutExpired):
            pass

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(quietly, sorted(wanted)))


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Check the page's directives, naming the file and line; tell the examples the page's
    URL (for their links); hand the search index the page's keywords."""
    examples.current_url = page.url
    source = Path(page.file.abs_src_path).read_text(encoding="utf-8") if page.file.abs_src_path \
        else markdown
    try:
        examples.parse(source)
    except examples.DirectiveError as error:
        raise PluginError(f"{page.file.src_uri}:{error.line}: {error.message}") from None
    keywords = course.search_keywords(page.meta)
    if keywords:
        page.meta["tags"] = keywords
    return markdown


def on_page_content(html: str, page, config, files) -> str:
    """Copy buttons, table wrappers and lighter code markup, built in."""
    return speed.page_content(html)


def on_post_build(config) -> None:
    """List every example of the site in ``examples.json``."""
    manifest.write(Path(config["site_dir"]))
