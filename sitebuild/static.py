"""Files the pages link to, put into ``docs/`` before a build (all ignored by git).

MkDocs and Zensical both publish whatever ``docs/`` holds, so generating these
files there, rather than in a build hook, gives both the same site:

* ``docs/assets/vendor/pyodide/``: Pyodide's core files, for the Run buttons
  (`sitebuild.pyodide.fetch`);
* ``docs/examples/``: every module of ``snippets/`` and the test files of its
  chapter, which the links under each example download;
* ``docs/reference/``: one code-reference page per chapter, a mkdocstrings
  ``:::`` entry per module, and their index.

`stage` runs when the ``sitebuild.examples`` extension is loaded, so a plain
``mkdocs build`` or ``zensical build`` needs no extra step. It rewrites only
what changed, so ``make serve``, which watches ``docs/``, does not loop.
"""

from __future__ import annotations

from pathlib import Path

from sitebuild import pyodide
from sitebuild.facts import CHAPTERS, DOCS, SNIPPETS, TESTS, modules

EXAMPLES = DOCS / "examples"
REFERENCE = DOCS / "reference"

_last: tuple | None = None


def _fingerprint() -> tuple:
    files = [*SNIPPETS.glob("*/*.py"), *TESTS.glob("*/test_*.py")]
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))


def _sync(folder: Path, wanted: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``wanted`` (relative path -> content)."""
    for relative, content in wanted.items():
        target = folder / relative
        if not target.is_file() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    if folder.is_dir():
        for path in sorted(folder.rglob("*"), reverse=True):
            relative = path.relative_to(folder).as_posix()
            if path.is_file() and relative not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def reference_pages() -> dict[str, bytes]:
    """``reference/<chapter>.md`` per chapter package, and ``reference/index.md``."""
    pages: dict[str, str] = {}
    index = ["# Code reference", "",
             "Every module that the pages show, with its docstrings. Generated at build.", ""]
    for chapter, title in CHAPTERS.items():
        names = sorted(m.stem for m in (SNIPPETS / chapter).glob("*.py") if m.stem != "__init__")
        if not names:
            continue
        # Generated API pages rank below the prose pages that teach the same names.
        body = ["---", (f"description: Code reference of the {title} chapter's example modules, "
                "generated from their docstrings."), "search:", "  boost: 0.1", "---", "",
                f"# {title}", "",
                (f"Modules of `snippets/{chapter}/`, one per example. Each runs on its own "
                f"and is exercised by `tests/{chapter}/`."), ""]
        body += [f"::: snippets.{chapter}.{name}\n" for name in names]
        pages[f"{chapter}.md"] = "\n".join(body)
        index.append(f"- [{title}]({chapter}.md): {len(names)} modules")
    pages["index.md"] = "\n".join(index) + "\n"
    return {name: text.encode() for name, text in pages.items()}


def stage() -> None:
    """Bring the generated files of ``docs/`` up to date with the sources."""
    global _last
    pyodide.unavailable()  # fetches Pyodide once per process, or says why not
    now = _fingerprint()
    if now == _last:
        return
    files = {f"{p.parent.name}/{p.name}": p.read_bytes() for p in modules()}
    files |= {f"tests/{p.parent.name}/{p.name}": p.read_bytes()
              for chapter in CHAPTERS for p in sorted((TESTS / chapter).glob("test_*.py"))}
    _sync(EXAMPLES, files)
    _sync(REFERENCE, reference_pages())
    _last = now
