"""The ``example`` directive: one line of a page names an example, the build does the rest.

Syntax (an HTML comment on a line of its own, indented like the block it
stands for)::

    <!-- example: CHAPTER/MODULE.py[:SECTION] [collapsed] [output=run|recorded]
                  [title="LABEL"] [summary="NOTE"] [only=output] -->

* Without ``:SECTION`` the whole module is shown, section markers left out,
  titled with its file name; with ``collapsed`` inside a closed ``??? example``
  block ("The whole module: NAME (NOTE)", NOTE by default "copy it and run it
  as it stands", or "copy it and run it against Redis" for a module that needs
  an engine). Under it: the Run bar, or a note saying why the reader's
  browser cannot run it, and links to download the module and the test files
  that import it.
* With ``:SECTION`` one section of it (``# --8<-- [start:SECTION]`` to
  ``[end:SECTION]``, dedented) is shown as an excerpt titled
  "NAME (excerpt: LABEL)". The page must also show the whole module, so a
  reader can copy something that runs.
* ``output=run`` shows, after the block, what the module printed when this
  page was built (run as a reader would run it: fresh interpreter, empty
  directory, nothing of the project importable); a module that fails breaks
  the build. ``output=recorded`` shows ``docs/data/outputs/CHAPTER/MODULE.txt``,
  which a site test re-records against the real engines and compares on every
  run. ``only=output`` shows just the output, where the prose wants it apart
  from the code.

A directive this module does not know, an unknown option, a missing module,
section or recording, or an excerpt whose module the page does not show whole,
stops the build with the line and what is wrong. Every rendered block carries
``data-example`` attributes, from which `sitebuild.manifest` lists the site's
examples.
"""

from __future__ import annotations

import hashlib
import html
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

from sitebuild import pyodide, static
from sitebuild.facts import RECORDED, SNIPPETS, as_shown, reader_env, section, tests_of

#: Directives the site's pages may use; any other comment shaped like one is a typo.
DIRECTIVES = {"example", "bench", "catalogue", "asyncapi", "minutes", "phase-minutes",
              "course-minutes", "patterns-index", "glossary"}
COMMENT = re.compile(r"<!--\s*(?P<name>[a-z][\w-]*)\s*(?::(?P<args>.*?))?\s*-->")
LINE = re.compile(r"^(?P<indent>[ \t]*)<!--\s*example\s*:(?P<args>.*?)-->[ \t]*$")
FENCE = re.compile(r"^[ \t]*(?P<mark>`{3,}|~{3,})")
OPTIONS = {"collapsed", "output", "title", "summary", "only"}
DEFAULT_SUMMARY = "copy it and run it as it stands"


class DirectiveError(ValueError):
    """A directive the build cannot render; ``line`` counts from 1 in the text given."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Example:
    """One ``example`` directive of a page."""

    line: int  # 1-based, in the text parsed
    indent: str
    module: str  # chapter/module.py
    section: str | None = None
    collapsed: bool = False
    output: str | None = None  # "run" or "recorded"
    title: str = ""
    summary: str = ""  # "" for the default: see `summary_of`
    only_output: bool = False
    options: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return Path(self.module).name

    @property
    def kind(self) -> str:
        return "output" if self.only_output else "excerpt" if self.section else "whole"


def _code_lines(lines: list[str]) -> list[bool]:
    """For each line, whether it is inside a fenced code block (fence lines included)."""
    inside: list[bool] = []
    mark = ""
    for line in lines:
        found = FENCE.match(line)
        if mark:
            inside.append(True)
            if found and found["mark"][0] == mark[0] and len(found["mark"]) >= len(mark) \
                    and not line.strip().strip(mark[0]):
                mark = ""
        elif found:
            mark = found["mark"]
            inside.append(True)
        else:
            inside.append(False)
    return inside


def _parse_one(number: int, indent: str, args: str) -> Example:
    try:
        words = shlex.split(args)
    except ValueError as error:
        raise DirectiveError(number, f"example: cannot read its options ({error})") from None
    if not words:
        raise DirectiveError(number, "example: names no module (example: chapter/module.py)")
    target, *rest = words
    module, _, name = target.partition(":")
    if not re.fullmatch(r"[a-z_]+/[a-z0-9_]+\.py", module):
        raise DirectiveError(number, f"example: {target!r} is not chapter/module.py[:section]")
    path = SNIPPETS / module
    if not path.is_file():
        raise DirectiveError(number, f"example: no module snippets/{module}")
    options: dict[str, str] = {}
    for word in rest:
        key, equals, value = word.partition("=")
        if key not in OPTIONS or (key == "collapsed") == bool(equals):
            raise DirectiveError(number, f"example: unknown option {word!r} "
                                 f"(known: collapsed, output=, title=, summary=, only=)")
        options[key] = value
    output = options.get("output")
    if output not in (None, "run", "recorded"):
        raise DirectiveError(number, f"example: output={output} (use output=run or output=recorded)")
    if "only" in options and options["only"] != "output":
        raise DirectiveError(number, f"example: only={options['only']} (only=output is the one)")
    only_output = "only" in options
    if only_output and (not output or name or len(options) > 2):
        raise DirectiveError(number, "example: only=output takes a whole module and output=, "
                                     "nothing else")
    source = path.read_text(encoding="utf-8")
    if name:
        if section(source, name) is None:
            raise DirectiveError(number, f"example: snippets/{module} has no section {name!r} "
                                         f"(# --8<-- [start:{name}] ... [end:{name}])")
        if not options.get("title"):
            raise DirectiveError(number, f"example: the excerpt {target} needs title=\"...\" "
                                         "saying what it shows")
        if "collapsed" in options or output or "summary" in options:
            raise DirectiveError(number, "example: an excerpt takes only title=; put collapsed, "
                                         "output= and summary= on the whole module")
    elif "title" in options:
        raise DirectiveError(number, "example: a whole module is titled with its file name; "
                                     "title= is for excerpts")
    if "summary" in options and "collapsed" not in options:
        raise DirectiveError(number, "example: summary= is the note of a collapsed block")
    for text in (options.get("title", ""), options.get("summary", "")):
        if any(c in text for c in '"<>()'):
            raise DirectiveError(number, f"example: {text!r}: no quotes, brackets or parentheses")
    if output == "recorded" and not (RECORDED / module.replace(".py", ".txt")).is_file():
        raise DirectiveError(number, f"example: no recording docs/data/outputs/"
                                     f"{module.replace('.py', '.txt')}; run the site tests with "
                                     "EDD_RECORD=1 and real engines to record it")
    return Example(number, indent, module, name or None, "collapsed" in options, output,
                   options.get("title", ""), options.get("summary", ""),
                   only_output, options)


def parse(text: str) -> list[Example]:
    """Every ``example`` directive of a page, checked; raises `DirectiveError` for the
    first problem, or for any directive-shaped comment the site does not know."""
    lines = text.splitlines()
    examples: list[Example] = []
    for number, (line, in_code) in enumerate(zip(lines, _code_lines(lines)), start=1):
        if in_code or "<!--" not in line:
            continue
        prose = re.sub(r"(`+).+?\1", "", line)  # code spans show directives, never run them
        for comment in COMMENT.finditer(prose):
            if comment["name"] not in DIRECTIVES:
                raise DirectiveError(number, f"unknown directive {comment['name']!r} in "
                                             f"{comment[0]!r} (known: {', '.join(sorted(DIRECTIVES))})")
        if re.search(r"<!--\s*example\b", prose):
            found = LINE.match(line)
            if not found:
                raise DirectiveError(number, "example: the directive must stand on a line of its own")
            examples.append(_parse_one(number, found["indent"], found["args"]))
    whole = {e.module for e in examples if e.kind == "whole"}
    for example in examples:
        if example.section and example.module not in whole:
            raise DirectiveError(example.line, f"example: the excerpt {example.module}:"
                                 f"{example.section} needs the whole module on the same page "
                                 f"(<!-- example: {example.module} collapsed -->)")
    return examples


# --- Outputs -----------------------------------------------------------------

_outputs: dict[tuple[str, str], str] = {}


class ExampleFailed(RuntimeError):
    """An example printed an error instead of its output."""


def run(module: str) -> str:
    """What ``snippets/<module>`` prints, run as a reader runs it: a fresh interpreter in
    an empty directory, ``-I`` so nothing of the project is importable. Cached by content."""
    path = SNIPPETS / module
    key = (module, hashlib.sha256(path.read_bytes()).hexdigest())
    if key not in _outputs:
        with tempfile.TemporaryDirectory() as empty:
            done = subprocess.run([sys.executable, "-I", str(path)], cwd=empty, env=reader_env(),
                                  capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise ExampleFailed(f"snippets/{module} exited {done.returncode}\n{done.stderr}")
        _outputs[key] = done.stdout
    return _outputs[key]


def recorded(module: str) -> str:
    """The recorded output of a module that needs real engines."""
    return (RECORDED / module.replace(".py", ".txt")).read_text(encoding="utf-8")


# --- Rendering ---------------------------------------------------------------

def _fence(code: str, info: str, indent: str) -> list[str]:
    longest = max((len(m) for m in re.findall(r"`{3,}", code)), default=2)
    mark = "`" * max(3, longest + 1)
    return [f"{indent}{mark}{info}", *(indent + line for line in code.split("\n")),
            f"{indent}{mark}", ""]


def _attrs(example: Example, **more: str) -> str:
    pairs = {"data-example": example.module, "data-example-kind": example.kind, **more}
    if example.section:
        pairs["data-example-section"] = example.section
    return " ".join(f'{key}="{html.escape(value)}"' for key, value in pairs.items())


def summary_of(example: Example, source: str) -> str:
    """The note of a collapsed whole module: the page's, else how to run it."""
    if example.summary:
        return example.summary
    needed = pyodide.engines(source)
    return f"copy it and run it against {pyodide.join(needed)}" if needed else DEFAULT_SUMMARY


def bar(module: str, verdict: pyodide.Verdict) -> str:
    """The Run bar under a whole module, or the note saying why the page cannot run it."""
    if not verdict.runnable:
        return f'<p class="ed-run-note" data-snippet="{module}">{html.escape(verdict.note)}</p>'
    name = Path(module).name
    needs = ' data-needs="stack-switching"' if verdict.stack_switching else ""
    note = (f'<p class="ed-run-note" data-snippet="{module}"{needs}>'
            f"{html.escape(pyodide.STACK_SWITCHING)}</p>" if verdict.stack_switching else "")
    return (f'<div class="ed-run" data-snippet="{module}" data-filename="{name}" '
            f'data-pyodide="{pyodide.VERSION}"{needs} data-state="idle">'
            '<button type="button" class="md-button md-button--primary ed-run__start" '
            f'aria-label="Run {name} in your browser">Run</button>'
            f'<button type="button" class="md-button ed-run__stop" aria-label="Stop {name}" '
            "disabled>Stop</button>"
            '<span class="ed-run__status" role="status" aria-live="polite">'
            "Runs in your browser (Pyodide, Python 3.14): nothing is sent anywhere."
            "</span></div>" + note)


def verdict(module: str, page_runs_it: bool) -> pyodide.Verdict:
    """Whether this page offers Run for a module it shows whole."""
    found = pyodide.judge((SNIPPETS / module).read_text(encoding="utf-8"))
    if found.runnable and not page_runs_it:
        return pyodide.Verdict(False, pyodide.NO_OUTPUT)
    if found.runnable and pyodide.unavailable():
        return pyodide.Verdict(False, pyodide.UNAVAILABLE)
    return found


#: The URL of the page being rendered, relative to the site's root ("fundamentals/core_concepts/"),
#: set by the MkDocs hook before each page.
current_url = ""


def to_root(md: Markdown) -> str:
    """The relative path from the page ``md`` is rendering to the site's root.

    MkDocs leaves links in HTML as they are, so they climb from the page's URL.
    Zensical (which names the page in its rendering context) resolves them from
    the page's source file, as it does Markdown links, and rewrites them.
    """
    if "rendering_context" in md.preprocessors:
        return "../" * str(md.preprocessors["rendering_context"].page.path).count("/")
    return "../" * current_url.count("/")


def links(module: str, root: str) -> str:
    """Links under a whole module: the file itself, the tests that import it, and its
    code reference; relative (``root`` climbs to the site's root), so the site works
    from any folder."""
    chapter, name = module.split("/")
    parts = [f'<a href="{root}examples/{module}" download>Download {name}</a>']
    tests = tests_of(module)
    if tests:
        parts.append("its tests: " + ", ".join(
            f'<a href="{root}examples/tests/{chapter}/{t.name}" download>{t.name}</a>'
            for t in tests))
    anchor = f"snippets.{chapter}.{Path(name).stem}"
    parts.append(f'<a href="{root}reference/{chapter}/#{anchor}">code reference</a>')
    return f'<p class="ed-example-links" data-example="{module}">{" · ".join(parts)}</p>'


class ExamplePreprocessor(Preprocessor):
    """Replaces each ``example`` directive by the Markdown and HTML it stands for."""

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        examples = {e.line: e for e in parse(text)}
        if not examples:
            return lines
        page_runs = {e.module for e in examples.values() if e.output == "run"}
        out: list[str] = []
        for number, line in enumerate(lines, start=1):
            example = examples.get(number)
            out.extend(self.render(example, example.module in page_runs) if example else [line])
        return out

    def stash(self, markup: str, indent: str) -> list[str]:
        return [indent + self.md.htmlStash.store(markup), ""]

    def render(self, example: Example, page_runs_it: bool) -> list[str]:
        indent = example.indent
        if example.only_output:
            return self.output(example, indent)
        source = (SNIPPETS / example.module).read_text(encoding="utf-8")
        if example.section:
            code = section(source, example.section) or ""
            title = f"{example.name} (excerpt: {example.title})"
            return ["", *_fence(code, f' {{ .python title="{title}" {_attrs(example)} }}', indent)]
        inner = indent + "    " if example.collapsed else indent
        head = ["", f'{indent}??? example "The whole module: {example.name} ({summary_of(example, source)})"',
                ""] if example.collapsed else [""]
        found = verdict(example.module, page_runs_it)
        kind = ("stack-switching" if found.stack_switching else "yes") if found.runnable else "no"
        body = _fence(as_shown(source),
                      f' {{ .python title="{example.name}" {_attrs(example, **{"data-example-run": kind})} }}',
                      inner)
        body += self.stash(bar(example.module, found), inner)
        body += self.stash(links(example.module, to_root(self.md)), inner)
        return head + body + (self.output(example, indent) if example.output else [])

    def output(self, example: Example, indent: str) -> list[str]:
        if example.output == "run":
            text, how, css = run(example.module), "printed when this page was built", "ed-output"
        else:
            text = recorded(example.module)
            how = "recorded by the test suite against the real engine, and checked on every run"
            css = "ed-output ed-recorded"
        opening = f'<div class="{css}" data-snippet="{example.module}">'
        return ["", *self.stash(opening, indent),
                *_fence(text.removesuffix("\n"), f' {{ .text title="Output of {example.name}, {how}" }}',
                        indent),
                *self.stash("</div>", indent)]


class ExampleExtension(Extension):
    """Registers the ``example`` directive: after snippets and whitespace normalisation
    (which would strip the stash's placeholders), before fenced code blocks."""

    def extendMarkdown(self, md: Markdown) -> None:
        static.stage()
        md.registerExtension(self)
        md.preprocessors.register(ExamplePreprocessor(md), "edd_examples", 29)


def makeExtension(**kwargs: object) -> ExampleExtension:
    return ExampleExtension(**kwargs)
