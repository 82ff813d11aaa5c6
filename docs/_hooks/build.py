"""MkDocs hooks: run the examples at build time and keep the site offline.

Page directives (HTML comments, so a page still reads well unbuilt):

* ``<!-- run: fundamentals/core_concepts_event_bus.py -->`` runs that snippet
  as a script, exactly as a reader would after copying it, and shows what it
  printed. A snippet that fails breaks the build.
* ``<!-- recorded: messaging/message_queues_redis.py -->`` shows the output of
  a module that needs a real engine (there is none during the build). The
  text comes from ``docs/data/outputs/<path>.txt``; a site test runs the
  module against the real engines and fails if the file differs from what it
  prints now (``EDD_RECORD=1`` rewrites the files).
* ``<!-- bench: fundamentals/core_concepts_event_bus -->`` renders the data
  file ``docs/data/bench/<name>.json`` that ``make bench`` wrote, as a table
  with the machine and date it was measured on. ``make mutate`` writes
  ``mutation/summary.json`` in the same shape (one row per module, with the
  date each module was last run), so ``<!-- bench: mutation/summary -->``
  renders the mutation scores.

The hooks also generate one code-reference page per chapter package, and
point Material's lazy Mermaid loader at the copy served by this site instead
of a CDN, so diagrams load only on pages that have one and never leave the
site's origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "snippets"
BENCH_DATA = ROOT / "docs" / "data" / "bench"
RECORDED = ROOT / "docs" / "data" / "outputs"
MERMAID_CDN = "https://unpkg.com/mermaid@11/dist/mermaid.min.js"
MERMAID_LOCAL = 'new URL("assets/vendor/mermaid/mermaid.min.js",__md_scope).href'

# Package names whose title is not their name capitalised word by word.
TITLES = {"cqrs": "CQRS", "testing": "Testing Event-Driven Systems",
          "monitoring": "Monitoring and Observability", "messaging": "Messaging Systems",
          "processing": "Event Processing"}

RUN = re.compile(r"^<!-- run: (?P<path>[\w/]+\.py) -->[ \t]*$", re.MULTILINE)
RECORD = re.compile(r"^<!-- recorded: (?P<path>[\w/]+\.py) -->[ \t]*$", re.MULTILINE)
BENCH = re.compile(r"^<!-- bench: (?P<name>[\w/]+) -->[ \t]*$", re.MULTILINE)

_outputs: dict[tuple[str, str], str] = {}


def run_snippet(relative: str) -> str:
    """Run ``snippets/<relative>`` in a fresh interpreter in an empty directory.

    ``-I`` keeps the project off ``sys.path``: the module must stand alone,
    exactly as it does when a reader pastes it. Outputs are cached by content.
    """
    path = SNIPPETS / relative
    if not path.is_file():
        raise PluginError(f"run: no snippet at snippets/{relative}")
    key = (relative, hashlib.sha256(path.read_bytes()).hexdigest())
    if key not in _outputs:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0",
               "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8"}
        with tempfile.TemporaryDirectory() as empty:
            done = subprocess.run([sys.executable, "-I", str(path)], cwd=empty, env=env,
                                  capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise PluginError(f"run: snippets/{relative} exited {done.returncode}\n{done.stderr}")
        _outputs[key] = done.stdout
    return _outputs[key]


def _block(relative: str, output: str, css: str, how: str) -> str:
    fence = "~~~~" if "```" in output else "```"
    name = Path(relative).name
    return (
        f'<div class="{css}" data-snippet="{relative}" markdown>\n\n'
        f'{fence}text title="Output of {name}, {how}"\n'
        f"{output}{'' if output.endswith(chr(10)) else chr(10)}{fence}\n\n</div>"
    )


def _output_block(match: re.Match[str]) -> str:
    relative = match["path"]
    return _block(relative, run_snippet(relative), "ed-output",
                  "printed when this page was built")


def _recorded_block(match: re.Match[str]) -> str:
    relative = match["path"]
    if not (SNIPPETS / relative).is_file():
        raise PluginError(f"recorded: no snippet at snippets/{relative}")
    path = RECORDED / relative.replace(".py", ".txt")
    if not path.is_file():
        raise PluginError(f"recorded: no {path.relative_to(ROOT)}; run the site tests "
                          "with EDD_RECORD=1 and real engines to record it")
    return _block(relative, path.read_text(encoding="utf-8"), "ed-output ed-recorded",
                  "recorded by the test suite against the real engine, and checked on every run")


def _bench_table(match: re.Match[str]) -> str:
    path = BENCH_DATA / f"{match['name']}.json"
    if not path.is_file():
        raise PluginError(f"bench: no data file {path.relative_to(ROOT)}; run `make bench`")
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| " + " | ".join(data["columns"]) + " |",
             "|" + "|".join("---:" if i else "---" for i in range(len(data["columns"]))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in data["rows"]]
    lines += ["", f"*Measured {data['date']} on {data['machine']}, Python {data['python']}, "
                  f"by `{data['command']}`. {data.get('note', '')}*"]
    return "\n".join(lines)


def on_pre_build(config) -> None:
    """Run every example that a page shows with ``run:`` before the pages are built,
    four at a time; the pages then find their output cached. A failure is left for
    the page's own directive to report, with its message."""
    wanted = sorted({m["path"] for page in Path(config["docs_dir"]).rglob("*.md")
                     for m in RUN.finditer(page.read_text(encoding="utf-8"))})

    def quietly(relative: str) -> None:
        try:
            run_snippet(relative)
        except (PluginError, subprocess.TimeoutExpired):
            pass

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(quietly, wanted))


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Expand the ``run``, ``recorded`` and ``bench`` directives of one page."""
    markdown = RUN.sub(_output_block, markdown)
    markdown = RECORD.sub(_recorded_block, markdown)
    return BENCH.sub(_bench_table, markdown)


def on_files(files: Files, config) -> Files:
    """Generate ``reference/<chapter>.md`` with a ``:::`` entry per snippet module."""
    chapters = sorted(p for p in SNIPPETS.iterdir() if (p / "__init__.py").is_file())
    index = ["# Code reference", "",
             "Every module that the pages show, with its docstrings. Generated at build.", ""]
    for chapter in chapters:
        modules = sorted(m.stem for m in chapter.glob("*.py") if m.stem != "__init__")
        if not modules:
            continue
        title = TITLES.get(chapter.name, chapter.name.replace("_", " ").title())
        # Generated API pages rank below the prose pages that teach the same names.
        body = ["---", f"description: Code reference of the {title} chapter's example modules, "
                "generated from their docstrings.", "search:", "  boost: 0.1", "---", "",
                f"# {title}", "",
                f"Modules of `snippets/{chapter.name}/`, one per example. Each runs on its own "
                f"and is exercised by `tests/{chapter.name}/`.", ""]
        body += [f"::: snippets.{chapter.name}.{module}\n" for module in modules]
        files.append(File.generated(config, f"reference/{chapter.name}.md",
                                    content="\n".join(body)))
        index.append(f"- [{title}]({chapter.name}.md): {len(modules)} modules")
    files.append(File.generated(config, "reference/index.md", content="\n".join(index) + "\n"))
    return files


def on_post_build(config) -> None:
    """Serve Mermaid from this site: rewrite the CDN address in Material's bundle."""
    bundles = list(Path(config["site_dir"], "assets", "javascripts").glob("bundle.*.min.js"))
    if not bundles:
        raise PluginError("no Material bundle found to point at the local Mermaid")
    for bundle in bundles:
        text = bundle.read_text(encoding="utf-8")
        if f'"{MERMAID_CDN}"' not in text and MERMAID_LOCAL not in text:
            raise PluginError(f"{bundle.name}: Mermaid CDN address not found; theme changed?")
        bundle.write_text(text.replace(f'"{MERMAID_CDN}"', MERMAID_LOCAL), encoding="utf-8")
