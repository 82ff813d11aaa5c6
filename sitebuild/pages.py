"""The page directives other than examples, as one Python-Markdown extension.

* ``<!-- bench: NAME -->``: the table ``make bench`` wrote to
  ``docs/data/bench/NAME.json`` (``make mutate``: ``mutation/summary``), with
  the machine and date it was measured on;
* ``<!-- catalogue: event_design -->`` and ``<!-- asyncapi: APP -->``: the
  event catalogue and its AsyncAPI documents (`sitebuild.catalogue`);
* ``<!-- minutes: PAGE -->``, ``<!-- phase-minutes -->``,
  ``<!-- course-minutes -->``, ``<!-- patterns-index -->``,
  ``<!-- glossary -->``: the Course section's computed parts
  (`sitebuild.course`), and the glossary's abbreviations on every page;
* each ```mermaid fence becomes its SVG, drawn ahead by ``make diagrams``
  (`sitebuild.diagrams`).
"""

from __future__ import annotations

import json
import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

from sitebuild import catalogue, course, diagrams
from sitebuild.facts import BENCH_DATA, ROOT

BENCH = re.compile(r"^<!-- bench: (?P<name>[\w/]+) -->[ \t]*$", re.MULTILINE)


class BenchError(ValueError):
    """A bench directive names no data file."""


def bench_table(name: str) -> str:
    """The Markdown table of ``docs/data/bench/<name>.json``."""
    path = BENCH_DATA / f"{name}.json"
    if not path.is_file():
        raise BenchError(f"bench: no data file {path.relative_to(ROOT)}; run `make bench`")
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| " + " | ".join(data["columns"]) + " |",
             "|" + "|".join("---:" if i else "---" for i in range(len(data["columns"]))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in data["rows"]]
    lines += ["", (f"*Measured {data['date']} on {data['machine']}, Python {data['python']}, "
                   f"by `{data['command']}`. {data.get('note', '')}*")]
    return "\n".join(lines)


def expand(markdown: str) -> str:
    """Every directive of this module expanded, and the abbreviations appended."""
    markdown = BENCH.sub(lambda m: bench_table(m["name"]), markdown)
    markdown = catalogue.expand(markdown)
    markdown = course.expand(markdown)
    markdown = diagrams.inline(markdown)
    return f"{markdown}\n\n{course.abbreviations()}\n"


class PagesPreprocessor(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return expand("\n".join(lines)).split("\n")


class PagesExtension(Extension):
    """Registers the directives above: after the examples, before fenced code blocks."""

    def extendMarkdown(self, md: Markdown) -> None:
        md.registerExtension(self)
        md.preprocessors.register(PagesPreprocessor(md), "edd_pages", 28)


def makeExtension(**kwargs: object) -> PagesExtension:
    return PagesExtension(**kwargs)
