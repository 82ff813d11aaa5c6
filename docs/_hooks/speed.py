"""Page speed: Material's script bundle loads with ``defer``, and two rules of its
stylesheets that restyle the whole page as it starts are left out.

Material puts ``<script src=".../bundle.<hash>.min.js">`` at the end of the
body, without ``defer``. A phone on a slow network then waits for the bundle
(35 KB gzipped) before it paints the page it has already received, and
Lighthouse counts it as render-blocking. With ``defer`` the browser paints
first and runs the bundle once the document is parsed, which is when it ran
before. The site's own scripts are deferred in ``mkdocs.yml`` and keep their
order after the bundle, so ``document$`` exists when they subscribe to it.

The inline script in ``overrides/main.html`` that holds back the search index
stays synchronous: it must patch ``XMLHttpRequest`` before the bundle runs.

When the palette starts, and whenever a reader switches colours, Material marks
``<body data-md-color-switching>`` and unmarks it a moment later. Its stylesheet
has ``[data-md-color-switching] * {transition-duration: 0s !important}``, so
each mark restyles every element of the page: twice per page load, 50-70 ms
each on a page with 4,000 highlighted tokens on this machine, four times that
on the phone Lighthouse simulates. Without the rule, a colour switch fades in
the 125-250 ms the theme's transitions last, instead of snapping.

As it starts, Material also wraps every table of a page in two <div>s (so that a
wide table scrolls), and its rule ``.md-typeset table:not([class]) + *``, which
puts space after a table, makes Chromium restyle the whole article for each
table it moves: 5,000 elements at once on the event store page. Once wrapped, a
table has no next sibling and the rule matches nothing; the wrapper has its own
margins. Only a reader without scripts sees the difference: 1 em after a table
instead of 1.5 em.
"""

from __future__ import annotations

import re
from pathlib import Path

BUNDLE = re.compile(r'<script src="([^"]*assets/javascripts/bundle\.[0-9a-f]+\.min\.js)"></script>')


def defer(html: str, where: str) -> str:
    """Add ``defer`` to the bundle's script tag; fail the build if Material changed it."""
    deferred, found = BUNDLE.subn(r'<script src="\1" defer></script>', html)
    if found != 1:
        raise ValueError(f"{where}: expected Material's bundle script tag once, "
                         f"found it {found} times; update docs/_hooks/speed.py")
    return deferred


# A code block with an annotation marker in a comment ("# (1)!") and the list that
# follows it, which Material turns into the annotations' tooltips and hides. With
# `content.lazy` it does so when the block comes into view, after the page is drawn,
# and the list vanishing shifts the page: the list is marked to be hidden from the
# start when scripts run (extra.css).
ANNOTATED = re.compile(r'(<div class="language-[\w-]+ highlight">(?:(?!</div>).)*?'
                       r'<span class="c\w*">[^<]*\(\d+\)(?:(?!</div>).)*</div>\s*)<ol>', re.DOTALL)


def mark_annotation_lists(html: str) -> str:
    """Give each annotation list the class ``ed-annotations``."""
    return ANNOTATED.sub(r'\1<ol class="ed-annotations">', html)


def on_post_page(output: str, page, config) -> str:
    """Every page built from Markdown."""
    return mark_annotation_lists(defer(output, page.file.src_uri))


def on_post_template(output_content: str, template_name: str, config) -> str:
    """The pages built from a template alone (404.html)."""
    return defer(output_content, template_name) if template_name == "404.html" else output_content


# Rules of Material's stylesheets that each cost a restyle of the whole page, or
# of its whole article, and that this site does without (module docstring).
DROPPED = {
    "palette.*.min.css": ("[data-md-color-switching] *,[data-md-color-switching] :after,"
                          "[data-md-color-switching] :before{transition-duration:0s!important}"),
    "main.*.min.css": ".md-typeset table:not([class])+*{margin-top:1.5em}",
}
REMOVED = "/* a rule was removed here by docs/_hooks/speed.py */"


def drop_rule(site_dir: Path, pattern: str, rule: str) -> None:
    """Remove ``rule`` from the one stylesheet matching ``pattern``; fail if it is not there."""
    sheets = sorted(Path(site_dir, "assets", "stylesheets").glob(pattern))
    if len(sheets) != 1:
        raise ValueError(f"expected one stylesheet {pattern}, found {len(sheets)}; "
                         "update docs/_hooks/speed.py")
    text = sheets[0].read_text(encoding="utf-8")
    if REMOVED in text:  # a `mkdocs serve --dirty` rebuild: the file was not copied again
        return
    if text.count(rule) != 1:
        raise ValueError(f"expected the rule {rule!r} once in {sheets[0].name}, found it "
                         f"{text.count(rule)} times; update docs/_hooks/speed.py")
    sheets[0].write_text(text.replace(rule, REMOVED), encoding="utf-8")


def on_post_build(config) -> None:
    """Drop the rules of DROPPED from Material's stylesheets in the built site."""
    for pattern, rule in DROPPED.items():
        drop_rule(Path(config["site_dir"]), pattern, rule)
