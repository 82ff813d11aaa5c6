"""Mermaid diagrams drawn once, when they change, instead of in every reader's browser.

Mermaid is a 3.5 MB script. Run in the browser, a phone must download, parse
and execute it before a page's first diagram appears, and nearly every page
has one near the top. So each diagram is rendered ahead of time, by a vendored
Mermaid (``tools/mermaid/``, never published), in Chromium, and the SVG is
kept in ``docs/data/diagrams/<key>.svg`` (key: a hash of the diagram's
source). The ``sitebuild.pages`` extension swaps each ````` ```mermaid `````
fence for its SVG inline.
The SVG's colours are Material's ``--md-mermaid-*`` CSS variables, exactly as
Material's own renderer sets them, so diagrams follow the light and dark
schemes; the font is pinned to Arial's metrics (Arial, Liberation Sans,
Helvetica), which the labels were measured with.

A fence with no SVG stops the build with the command that draws it::

    make diagrams          # render what is missing, delete what no page uses
    make diagrams ARGS=--check   # exit 1 if anything is missing or stale

The site tests run the check too.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sys
from pathlib import Path

from sitebuild.facts import CHROMIUM, CHROMIUM_ARGS, DOCS, ROOT

STORE = DOCS / "data" / "diagrams"
MERMAID = ROOT / "tools" / "mermaid" / "mermaid.min.js"
FONT = 'Arial, "Liberation Sans", Helvetica, sans-serif'
FENCE = re.compile(r"^```mermaid[ \t]*\n(?P<source>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)



def key(source: str) -> str:
    """The store key of a diagram: its source, whitespace at the ends ignored."""
    return hashlib.sha256(source.strip().encode()).hexdigest()[:16]


def diagrams(markdown: str) -> list[str]:
    """The sources of the ```mermaid fences of one page, in order."""
    return [m["source"] for m in FENCE.finditer(markdown)]


class DiagramError(ValueError):
    """A diagram of a page has no SVG yet."""


def inline(markdown: str) -> str:
    """Replace each ```mermaid fence by its pre-rendered SVG."""
    def svg(match: re.Match[str]) -> str:
        path = STORE / f"{key(match['source'])}.svg"
        if not path.is_file():
            first = match["source"].strip().splitlines()[0]
            raise DiagramError(f"the diagram starting {first!r} is not drawn yet: run "
                               "`make diagrams` (it needs Chromium) and commit docs/data/diagrams/")
        return f'<div class="ed-diagram">{path.read_text(encoding="utf-8").strip()}</div>'

    return FENCE.sub(svg, markdown)


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

    config = {"startOnLoad": False, "themeCSS": material_theme_css(), "fontFamily": FONT,
              "sequence": {"actorFontSize": "16px", "messageFontSize": "16px",
                           "noteFontSize": "16px"}}
    out: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
            except Exception as error:  # noqa: BLE001 (Mermaid's parse error, with line and column)
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
    raise SystemExit(main(sys.argv[1:]))
