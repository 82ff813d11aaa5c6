"""What Material's script bundle would build in every reader's browser, built once
into the HTML instead (MkDocs only: Zensical's own script does it in the browser).

The bundle is left out of the MkDocs build (`overrides/main.html` says why), so:

- each code block gets its copy button, in the toolbar Material's stylesheet
  places in the block's top right corner. The toolbar is a <div>, not Material's
  <nav>: thirty unnamed navigation landmarks on a page help no one (axe:
  landmark-unique). Without scripts the button could not copy, so the stylesheet
  hides it then (`extra.css`). The button says which block it copies
  (`data-clipboard-target`); `site.js` copies on click;
- each table is wrapped in the two <div>s that let a wide table scroll sideways
  inside the page instead of widening it;
- each code block carries its number of lines, from which the stylesheet
  reserves its height while the browser skips laying out a block far from view
  (`content-visibility` in `extra.css`), and its widest line in characters, from
  which `site.js` tells whether a block not laid out yet is too wide for the page
  (a keyboard must then be able to focus it to scroll it).

And fewer elements to style: Pygments wraps every token in a <span>, also where
the span changes nothing (names take the colour of the code around them,
whitespace has none, neighbouring tokens of one kind each get their own). Those
spans are unwrapped or merged, which leaves the text and every colour as they
were, with about a third fewer elements on the longest pages.
"""

from __future__ import annotations

import html as entities
import re
import unicodedata

CODE = re.compile(r"(<code[^>]*>)(.*?)</code>", re.DOTALL)
# Token classes that Material's stylesheets colour like the code around them, or not at all.
PLAIN = re.compile(r'<span class="(?:n|w)">([^<]*)</span>')
TWINS = re.compile(r'<span class="([\w ]+)">([^<]*)</span><span class="\1">([^<]*)</span>')
PRE = re.compile(r"<pre>(<span></span>)?<code>(.*?)</code>", re.DOTALL)
TAG = re.compile(r"<[^>]*>")
TABLE = re.compile(r"<table>(.*?)</table>", re.DOTALL)
COPY = ('<div class="md-code__nav"><button class="md-code__button" title="Copy to clipboard" '
        'data-clipboard-target="#__code_{n} &gt; code" data-md-type="copy"></button></div>')


def columns(code: str) -> int:
    """The widest line of a highlighted code block, in the columns of a monospace font:
    tags dropped, entities read, tabs every 8 columns (the browser's default), and two
    columns for a wide East Asian character."""
    widest = 0
    for line in entities.unescape(TAG.sub("", code)).split("\n"):
        line = line.expandtabs(8)
        width = len(line) if line.isascii() else sum(
            2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
        widest = max(widest, width)
    return widest


def copy_buttons(html: str) -> str:
    """Number each ``<pre>`` of the page, put a copy button before its code, and give
    the code its number of lines and widest line (``--ed-lines`` for ``extra.css``,
    ``--ed-cols`` for ``site.js``)."""
    count = iter(range(1_000_000))

    def button(match: re.Match[str]) -> str:
        n, code = next(count), match.group(2)
        lines = code.count("\n") + (not code.endswith("\n"))
        return (f'<pre id="__code_{n}">{match.group(1) or ""}{COPY.format(n=n)}'
                f'<code style="--ed-lines: {lines}; --ed-cols: {columns(code)}">{code}</code>')

    return PRE.sub(button, html)


def wrap_tables(html: str) -> str:
    """Wrap each table in Material's scrolling wrapper."""
    return TABLE.sub(r'<div class="md-typeset__scrollwrap"><div class="md-typeset__table">'
                     r"<table>\1</table></div></div>", html)


def fewer_spans(html: str) -> str:
    """Unwrap the spans of plain tokens and merge neighbouring spans of one kind, in code."""

    def lighten(match: re.Match[str]) -> str:
        code = PLAIN.sub(r"\1", match.group(2))
        while True:
            merged = TWINS.sub(r'<span class="\1">\2\3</span>', code)
            if merged == code:
                return f"{match.group(1)}{code}</code>"
            code = merged

    return CODE.sub(lighten, html)


def page_content(html: str) -> str:
    """The content of a page built from Markdown, as the MkDocs build serves it."""
    return wrap_tables(copy_buttons(fewer_spans(html)))
