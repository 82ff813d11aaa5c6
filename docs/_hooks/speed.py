"""Page speed: Material's script bundle loads with ``defer``.

Material puts ``<script src=".../bundle.<hash>.min.js">`` at the end of the
body, without ``defer``. A phone on a slow network then waits for the bundle
(35 KB gzipped) before it paints the page it has already received, and
Lighthouse counts it as render-blocking. With ``defer`` the browser paints
first and runs the bundle once the document is parsed, which is when it ran
before. The site's own scripts are deferred in ``mkdocs.yml`` and keep their
order after the bundle, so ``document$`` exists when they subscribe to it.

The inline script in ``overrides/main.html`` that holds back the search index
stays synchronous: it must patch ``XMLHttpRequest`` before the bundle runs.
"""

from __future__ import annotations

import re

BUNDLE = re.compile(r'<script src="([^"]*assets/javascripts/bundle\.[0-9a-f]+\.min\.js)"></script>')


def defer(html: str, where: str) -> str:
    """Add ``defer`` to the bundle's script tag; fail the build if Material changed it."""
    deferred, found = BUNDLE.subn(r'<script src="\1" defer></script>', html)
    if found != 1:
        raise ValueError(f"{where}: expected Material's bundle script tag once, "
                         f"found it {found} times; update docs/_hooks/speed.py")
    return deferred


def on_post_page(output: str, page, config) -> str:
    """Every page built from Markdown."""
    return defer(output, page.file.src_uri)


def on_post_template(output_content: str, template_name: str, config) -> str:
    """The pages built from a template alone (404.html)."""
    return defer(output_content, template_name) if template_name == "404.html" else output_content
