"""``examples.json``: every example of the built site, read from the pages themselves.

Each block the ``example`` directive renders carries its identity in
``data-example*`` attributes, so the list is the same whichever tool built the
site. The tests read it instead of searching the HTML for code.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

BLOCK = re.compile(r'<div class="language-python highlight" (?P<attrs>data-example="[^>]*)>')
OUTPUT = re.compile(r'<div class="ed-output(?P<recorded> ed-recorded)?" data-snippet="(?P<module>[^"]+)">')
ATTR = re.compile(r'data-example(?:-(?P<key>[a-z]+))?="(?P<value>[^"]*)"')


def entries(site: Path) -> list[dict[str, str | None]]:
    """One entry per example block: page (URL path), module, kind (whole or excerpt),
    section, output (run, recorded or none: what the page shows for the module) and,
    for a whole module, run (yes, stack-switching or no: the Run bar's verdict)."""
    found = []
    for path in sorted(site.rglob("index.html")):
        text = path.read_text(encoding="utf-8")
        if "data-example=" not in text:
            continue
        page = "" if path.parent == site else path.parent.relative_to(site).as_posix() + "/"
        outputs = {m["module"]: "recorded" if m["recorded"] else "run" for m in OUTPUT.finditer(text)}
        for block in BLOCK.finditer(text):
            attrs = {m["key"] or "module": html.unescape(m["value"])
                     for m in ATTR.finditer(block["attrs"])}
            found.append({"page": page, "module": attrs["module"], "kind": attrs["kind"],
                          "section": attrs.get("section"),
                          "output": outputs.get(attrs["module"], "none"),
                          "run": attrs.get("run")})
    return found


def write(site: Path) -> Path:
    """Write ``<site>/examples.json`` and return its path."""
    target = site / "examples.json"
    target.write_text(json.dumps(entries(site), indent=1) + "\n", encoding="utf-8")
    return target
