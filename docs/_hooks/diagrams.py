"""Mermaid diagrams drawn once, when they change, instead of in every reader's browser.

Mermaid is a 3.5 MB script. Run in the browser, a phone must download, parse
and execute it before a page's first diagram appears, and nearly every page
has one near the top. So each diagram is rendered ahead of time, by the same
vendored Mermaid, in Chromium, and the SVG is kept in
``docs/data/diagrams/<key>.svg`` (key: a hash of the diagram's source). The
build hook below swaps each ````` ```mermaid ````` fence for its SVG inline.
The SVG's colours are Material's ``--md-mermaid-*`` CSS variables, exactly as
Material's own renderer sets them, so diagrams follow the light and dark
schemes; the font is pinned to Arial's metrics (Arial, Liberation Sans,
Helvetica), which the labels were measured with.

A fence with no SVG yet is left alone, and Material draws it in the browser
from the local copy of Mermaid, so writing a page never needs Chromium. Then::

    make diagrams          # render what is missing, delete what no page uses
    make diagrams ARGS=--check   # exit 1 if anything is missing or stale

The site tests run the check, so a page cannot be published with a diagram
that was not pre-rendered.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
STORE = DOCS / "data" / "diagrams"
MERMAID = DOCS / "assets" / "vendor" / "mermaid" / "mermaid.min.js"
FONT = 'Arial, "Liberation Sans", Helvetica, sans-serif'
FENCE = re.compile(r"^```mermaid[ \t]*\n(?P<source>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

log = logging.getLogger("mkdocs.hooks.diagrams")


def key(source: str) -> str:
    """The store key of a diagram: its source, whitespace at the ends ignored."""
    return hashlib.sha256(source.strip().encode()).hexdigest()[:16]


def diagrams(markdown: str) -> list[str]:
    """The sources of the ```mermaid fences of one page, in order."""
    return [m["source"] for m in FENCE.finditer(markdown)]


def _inline(match: re.Match[str], missing: list[str]) -> str:
    path = STORE / f"{key(match['source'])}.svg"
    if not path.is_file():
        missing.append(match["source"])
        return match.group(0)
    return f'<div class="ed-diagram">{path.read_text(encoding="utf-8").strip()}</div>'


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each fence that has a pre-rendered SVG by the SVG itself."""
    missing: list[str] = []
    markdown = FENCE.sub(lambda m: _inline(m, missing), markdown)
    if missing:
        log.info("%s: %d diagram(s) not pre-rendered, drawn in the browser; "
                 "run `make diagrams`", page.file.src_uri, len(missing))
    return markdown


# --- the renderer, run by `make diagrams` -------------------------------------

def wanted() -> dict[str, tuple[str, str]]:
    """Every diagram of every page, by key: (page, source)."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(DOCS.glob("**/*.md")):
        for source in diagrams(path.read_text(encoding="utf-8")):
            found[key(source)] = (str(path.relative_to(DOCS)), source)
    return found


ATTRIBUTE = re.compile(r'="[^"]*"')
NUMBER = re.compile(r"(\d\.\d{2})\d+")


def compact(svg: str) -> str:
    """Cut coordinates to hundredths of a pixel: Mermaid writes 16 digits, and some
    shapes are paths of hundreds of curves, so this halves the largest SVGs. Only
    attribute values are touched, never a label's text."""
    return ATTRIBUTE.sub(lambda m: NUMBER.sub(r"\1", m.group(0)), svg)


def material_theme_css() -> str:
    """The CSS that Material hands to Mermaid: colours as ``--md-mermaid-*`` variables."""
    import material

    bundle = next(Path(material.__file__).parent.glob("templates/assets/javascripts/bundle.*.min.js"))
    text = bundle.read_text(encoding="utf-8")
    name = re.search(r"mermaid\.initialize\(\{startOnLoad:!1,themeCSS:(\w+)", text)
    if not name:
        raise SystemExit(f"{bundle.name}: Material's Mermaid setup not found; theme changed?")
    literal = re.search(rf"\b{name[1]}=(\"(?:[^\"\\]|\\.)*\")", text)
    if not literal:
        raise SystemExit(f"{bundle.name}: Material's Mermaid theme CSS not found")
    return json.loads(literal[1])


def render(sources: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Draw each diagram with the vendored Mermaid in headless Chromium.

    A diagram Mermaid cannot parse stops the run with its page and the error.
    """
    from playwright.sync_api import sync_playwright

    from tests.site.conftest import ARGS, CHROMIUM

    config = {"startOnLoad": False, "themeCSS": material_theme_css(), "fontFamily": FONT,
              "sequence": {"actorFontSize": "16px", "messageFontSize": "16px",
                           "noteFontSize": "16px"}}
    out: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_content(f"<html><body style='--md-mermaid-font-family:{html.escape(FONT)};"
                         "font-family:var(--md-mermaid-font-family)'></body></html>")
        page.add_script_tag(path=str(MERMAID))
        page.evaluate("config => mermaid.initialize(config)", config)
        errors = []
        for name, (where, source) in sources.items():
            try:
                out[name] = page.evaluate(
                    "async ([id, text]) => (await mermaid.render(id, text)).svg",
                    [f"ed-diagram-{name}", source])
            except Exception as error:  # Mermaid's parse error, with line and column
                errors.append(f"{where}: {str(error).splitlines()[0]}\n"
                              + "\n".join(str(error).splitlines()[1:4]))
        browser.close()
    if errors:
        raise SystemExit("Mermaid could not draw:\n" + "\n\n".join(errors))
    return out


def main(argv: list[str]) -> int:
    STORE.mkdir(parents=True, exist_ok=True)
    want = wanted()
    have = {p.stem for p in STORE.glob("*.svg")}
    missing = {k: v for k, v in want.items() if k not in have}
    stale = sorted(have - set(want))
    if "--check" in argv:
        for name in missing:
            print(f"missing: {name}.svg, a diagram of {want[name][0]}")
        for name in stale:
            print(f"stale: {name}.svg (no page has this diagram)")
        if missing or stale:
            print("run `make diagrams`")
        return 1 if missing or stale else 0
    if "--all" in argv:
        missing = want
    for name, svg in render(missing).items():
        (STORE / f"{name}.svg").write_text(compact(svg) + "\n", encoding="utf-8")
    for name in stale:
        (STORE / f"{name}.svg").unlink()
    print(f"{len(want)} diagrams: {len(missing)} rendered, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
