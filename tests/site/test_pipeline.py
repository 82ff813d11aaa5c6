"""The example pipeline (sitebuild/), piece by piece, without building the site.

What a page's directive becomes, every way a directive can be wrong, which
modules the browser can run, the manifest, the files staged into docs/, and
the facts the build and the tests share.
"""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import markdown
import pytest
import yaml
from mkdocs.exceptions import PluginError

from sitebuild import diagrams, examples, facts, manifest, pages, pyodide, static
from sitebuild import hooks as hook

STDLIB = "fundamentals/core_concepts_message_kinds.py"  # runs in the browser, prints
BUS = "fundamentals/core_concepts_event_bus.py"  # has sections
REDIS = "messaging/retention_and_compaction_redis.py"  # needs Redis, recorded output
EXTENSIONS = ["attr_list", "admonition", "pymdownx.details", "pymdownx.highlight",
              "pymdownx.superfences", "sitebuild.examples"]


def render(text: str) -> str:
    return markdown.Markdown(extensions=EXTENSIONS, extension_configs={
        "pymdownx.highlight": {"pygments_lang_class": True}}).convert(text)


def error_of(text: str) -> examples.DirectiveError:
    with pytest.raises(examples.DirectiveError) as caught:
        examples.parse(text)
    return caught.value


# --- Parsing -------------------------------------------------------------------

def test_a_page_names_each_example_once_and_the_parser_reads_every_option():
    page = (f"Intro\n\n<!-- example: {BUS}:publish title=\"EventBus.publish\" -->\n\n"
            f"<!-- example: {BUS} collapsed output=run -->\n"
            f"    <!-- example: {REDIS} collapsed summary=\"start Redis first\" output=recorded -->\n"
            f"<!-- example: {STDLIB} output=run only=output -->\n")
    found = examples.parse(page)
    assert [(e.line, e.indent, e.module, e.section, e.kind, e.collapsed, e.output, e.title,
             e.summary) for e in found] == [
        (3, "", BUS, "publish", "excerpt", False, None, "EventBus.publish", ""),
        (5, "", BUS, None, "whole", True, "run", "", ""),
        (6, "    ", REDIS, None, "whole", True, "recorded", "", "start Redis first"),
        (7, "", STDLIB, None, "output", False, "run", "", ""),
    ]


@pytest.mark.parametrize(("page", "line", "words"), [
    ("a\n<!-- exmaple: x.py -->\n", 2, "unknown directive 'exmaple'"),
    (f"a\n\nb\n<!-- run: {STDLIB} -->\n", 4, "unknown directive 'run'"),
    ("<!-- glosary -->\n", 1, "unknown directive 'glosary'"),
    ("<!-- example: -->\n", 1, "names no module"),
    ("<!-- example: core_concepts.py -->\n", 1, "is not chapter/module.py"),
    ("<!-- example: fundamentals/nothing_here.py -->\n", 1, "no module snippets/fundamentals/nothing_here.py"),
    (f"<!-- example: {BUS}:nowhere title=\"x\" -->\n<!-- example: {BUS} -->\n", 1, "has no section 'nowhere'"),
    (f"<!-- example: {BUS}:publish -->\n<!-- example: {BUS} -->\n", 1, "needs title="),
    (f"x\n<!-- example: {BUS}:publish title=\"p\" -->\n", 2, "needs the whole module on the same page"),
    (f"<!-- example: {BUS} colapsed -->\n", 1, "unknown option 'colapsed'"),
    (f"<!-- example: {BUS} collapsed=yes -->\n", 1, "unknown option 'collapsed=yes'"),
    (f"<!-- example: {BUS} output=print -->\n", 1, "output=print (use output=run or output=recorded)"),
    (f"<!-- example: {BUS} only=code -->\n", 1, "only=code"),
    (f"<!-- example: {BUS} only=output -->\n", 1, "only=output takes a whole module and output="),
    (f"<!-- example: {BUS} title=\"x\" -->\n", 1, "title= is for excerpts"),
    (f"<!-- example: {BUS} summary=\"x\" -->\n", 1, "summary= is the note of a collapsed block"),
    (f"<!-- example: {BUS} collapsed summary=\"a (b)\" -->\n", 1, "no quotes, brackets or parentheses"),
    (f"<!-- example: {BUS}:publish title=\"p\" output=run -->\n<!-- example: {BUS} -->\n", 1,
     "an excerpt takes only title="),
    (f"<!-- example: {STDLIB} output=recorded -->\n", 1, "no recording docs/data/outputs/"),
    (f"See <!-- example: {STDLIB} --> here\n", 1, "must stand on a line of its own"),
    (f"<!-- example: {BUS} title=\"unclosed -->\n", 1, "cannot read its options"),
])
def test_a_wrong_directive_stops_the_build_naming_its_line_and_the_problem(page, line, words):
    error = error_of(page)
    assert error.line == line
    assert words in error.message, error.message
    assert str(error).startswith(f"line {line}: ")


def test_directive_shaped_text_in_code_is_left_alone():
    page = ("```html\n<!-- exmaple: not a directive -->\n```\n\n"
            "Write `<!-- run: x.py -->` in a page to ...\n")
    assert examples.parse(page) == []


# --- Rendering -----------------------------------------------------------------

def test_a_collapsed_whole_module_renders_its_block_bar_links_and_output(monkeypatch):
    monkeypatch.setattr(examples, "current_url", "fundamentals/core_concepts/")
    html = render(f"<!-- example: {STDLIB} collapsed output=run -->\n")
    source = (facts.SNIPPETS / STDLIB).read_text(encoding="utf-8")
    summary = re.search(r"<summary>(.*?)</summary>", html)[1]
    assert summary == ("The whole module: core_concepts_message_kinds.py "
                       "(copy it and run it as it stands)")
    block = re.search(r'<div class="language-python highlight" ([^>]*)>', html)[1]
    assert block == (f'data-example="{STDLIB}" data-example-kind="whole" data-example-run="'
                     + ("yes" if not pyodide.unavailable() else "no") + '"')
    code = re.search(r"<code>(.*?)</code>", html, re.DOTALL)[1]
    assert re.sub(r"<[^>]+>", "", code).replace("&quot;", '"').replace("&#39;", "'") \
        .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").rstrip("\n") \
        == facts.as_shown(source)
    assert f'class="ed-run" data-snippet="{STDLIB}"' in html or "ed-run-note" in html
    links = re.search(r'<p class="ed-example-links" data-example="([^"]+)">(.*?)</p>', html, re.DOTALL)
    assert links[1] == STDLIB
    assert re.findall(r'href="([^"]+)"', links[2]) == [
        f"../../examples/{STDLIB}",
        "../../examples/tests/fundamentals/test_core_concepts_message_kinds.py",
        "../../reference/fundamentals/#snippets.fundamentals.core_concepts_message_kinds"]
    assert links[2].count(" download>") == 2
    output = re.search(r'<div class="ed-output" data-snippet="([^"]+)">\s*'
                       r'<div class="language-text highlight"><span class="filename">([^<]+)</span>'
                       r"<pre>.*?<code>(.*?)</code>", html, re.DOTALL)
    assert output[1] == STDLIB
    assert output[2] == "Output of core_concepts_message_kinds.py, printed when this page was built"
    printed = examples.run(STDLIB)
    assert output[3].replace("&quot;", '"').replace("&#39;", "'").replace("&gt;", ">") \
        .replace("&lt;", "<").replace("&amp;", "&") == printed
    assert html.index("</details>") < html.index('class="ed-output"'), "output after the fold"


def test_an_excerpt_is_its_section_dedented_and_titled_as_an_excerpt():
    html = render(f'<!-- example: {BUS}:deliver title="the worker" -->\n\n<!-- example: {BUS} -->\n')
    first = html[:html.index("</div>")]
    assert '<span class="filename">core_concepts_event_bus.py (excerpt: the worker)</span>' in first
    assert f'data-example="{BUS}" data-example-kind="excerpt" data-example-section="deliver"' in first
    section = facts.section((facts.SNIPPETS / BUS).read_text(encoding="utf-8"), "deliver")
    assert section and not section.startswith(" ")
    shown = re.sub(r"<[^>]+>", "", re.search(r"<code>(.*?)</code>", first, re.DOTALL)[1])
    assert shown.replace("&gt;", ">").replace("&lt;", "<").replace("&quot;", '"') \
        .replace("&#39;", "'").replace("&amp;", "&").rstrip("\n") == section.rstrip("\n")
    assert "ed-run" not in first and "ed-example-links" not in first


def test_an_engine_module_says_what_it_needs_and_shows_its_recording():
    html = render(f"<!-- example: {REDIS} collapsed output=recorded -->\n")
    assert "(copy it and run it against Redis)</summary>" in html
    assert (f'<p class="ed-run-note" data-snippet="{REDIS}">Needs Redis: run it locally '
            "against a real server.</p>") in html
    assert 'data-example-run="no"' in html
    assert f'<div class="ed-output ed-recorded" data-snippet="{REDIS}">' in html
    assert "recorded by the test suite against the real engine" in html


def test_a_runnable_module_shown_without_its_output_gets_a_note_not_a_button():
    html = render(f"<!-- example: {STDLIB} -->\n")
    assert "ed-run\"" not in html and "class=\"ed-run " not in html
    note = pyodide.UNAVAILABLE if pyodide.unavailable() else pyodide.NO_OUTPUT
    assert f'<p class="ed-run-note" data-snippet="{STDLIB}">{note}</p>' in html


def test_a_module_that_fails_breaks_the_build_with_its_error(monkeypatch, tmp_path):
    chapter = tmp_path / "fundamentals"
    chapter.mkdir()
    (chapter / "broken_demo.py").write_text("raise SystemExit('no journal entries')\n")
    monkeypatch.setattr(examples, "SNIPPETS", tmp_path)
    with pytest.raises(examples.ExampleFailed, match=r"(?s)broken_demo\.py exited 1.*no journal"):
        examples.run("fundamentals/broken_demo.py")


def test_an_output_with_a_fence_inside_keeps_its_block_whole():
    lines = examples._fence("a\n```\nb", " { .text }", "  ")
    assert lines == ["  ```` { .text }", "  a", "  ```", "  b", "  ````", ""]


# --- What the browser can run ----------------------------------------------------

GUARDED = "import asyncio\n\nasync def main():\n    print(1)\n\nif __name__ == '__main__':\n    {}\n"


@pytest.mark.parametrize(("call", "stack_switching"), [
    ("asyncio.run(main())", False),
    ("asyncio.run(main(), debug=True)", True),  # the runner cannot await it
    ("print(asyncio.run(main()))", False),
])
def test_an_asyncio_run_is_judged_by_the_rule_the_runner_uses(call, stack_switching):
    source = GUARDED.format(call)
    verdict = pyodide.judge(source)
    assert verdict.runnable and verdict.stack_switching is stack_switching
    tree = pyodide.driver().main_guard_awaits(ast.parse(source))
    awaited = any(isinstance(node, ast.Await) for node in ast.walk(tree))
    assert awaited is not stack_switching


@pytest.mark.parametrize(("source", "note"), [
    ("import os\nprint(os.environ['REDIS_URL'])\n", "Needs Redis: run it locally against a real server."),
    ("import psycopg\nimport nats\n", "Needs NATS and PostgreSQL: run it locally against a real server."),
    ("import threading\nthreading.Thread(target=print).start()\n", "Starts threads"),
    ("import subprocess\n", "Starts processes"),
    ("import socket\n", "Opens network connections"),
    ("import asyncio\nasyncio.new_event_loop()\n", "Runs an asyncio event loop of its own"),
    ("import tkinter\n", "Needs tkinter, which Pyodide lacks"),
])
def test_what_a_browser_tab_cannot_do_is_said_in_a_few_words(source, note):
    verdict = pyodide.judge(source)
    assert not verdict.runnable and verdict.note.startswith(note), verdict.note


def test_an_asyncio_run_inside_a_function_needs_stack_switching():
    verdict = pyodide.judge("import asyncio\n\nasync def f():\n    pass\n\ndef g():\n"
                            "    asyncio.run(f())\n")
    assert verdict.runnable and verdict.stack_switching


# --- The manifest -----------------------------------------------------------------

@pytest.mark.parametrize(("url", "root"), [("", ""), ("about/", "../"),
                                           ("messaging/queues/", "../../")])
def test_under_mkdocs_links_climb_from_the_page_s_url(monkeypatch, url, root):
    monkeypatch.setattr(examples, "current_url", url)
    assert examples.to_root(markdown.Markdown(extensions=EXTENSIONS)) == root


def test_under_zensical_links_climb_from_the_page_s_source_which_it_rewrites():
    md = markdown.Markdown(extensions=EXTENSIONS)
    md.preprocessors.register(types.SimpleNamespace(
        page=types.SimpleNamespace(url="cqrs/query_side/", path="cqrs/query_side.md"),
        run=lambda lines: lines), "rendering_context", 0)
    assert examples.to_root(md) == "../"


def test_the_manifest_lists_each_example_block_with_its_page_output_and_verdict(tmp_path):
    page = tmp_path / "messaging" / "queues"
    page.mkdir(parents=True)
    html = render(f"<!-- example: {BUS}:publish title=\"p\" -->\n\n<!-- example: {BUS} collapsed "
                  f"output=run -->\n\n<!-- example: {REDIS} output=recorded -->\n")
    (page / "index.html").write_text(html)
    (tmp_path / "index.html").write_text("<p>no examples</p>")
    written = manifest.write(tmp_path)
    assert written == tmp_path / "examples.json"
    assert manifest.entries(tmp_path) == [
        {"page": "messaging/queues/", "module": BUS, "kind": "excerpt", "section": "publish",
         "output": "run", "run": None},
        {"page": "messaging/queues/", "module": BUS, "kind": "whole", "section": None,
         "output": "run", "run": "no" if pyodide.unavailable() else "yes"},
        {"page": "messaging/queues/", "module": REDIS, "kind": "whole", "section": None,
         "output": "recorded", "run": "no"},
    ]


# --- Files staged into docs/ -------------------------------------------------------

def test_staging_writes_what_changed_and_removes_what_is_gone(tmp_path):
    folder = tmp_path / "examples"
    static._sync(folder, {"a/one.py": b"1", "a/two.py": b"2"})
    before = (folder / "a" / "one.py").stat().st_mtime_ns
    static._sync(folder, {"a/one.py": b"1", "b/three.py": b"3"})
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "a/one.py", "b/three.py"]
    assert (folder / "a" / "one.py").stat().st_mtime_ns == before  # untouched: no serve loop
    static._sync(folder, {"b/three.py": b"4"})
    assert not (folder / "a").exists() and (folder / "b" / "three.py").read_bytes() == b"4"


def test_a_reference_page_per_chapter_lists_each_module():
    pages = static.reference_pages()
    assert set(pages) == {"index.md", *(f"{c}.md" for c in facts.CHAPTERS)}
    for chapter in facts.CHAPTERS:
        entries = re.findall(rb"^::: snippets\.(\w+)\.(\w+)$", pages[f"{chapter}.md"], re.MULTILINE)
        assert sorted(m.decode() for c, m in entries if c.decode() == chapter) == sorted(
            p.stem for p in (facts.SNIPPETS / chapter).glob("*.py") if p.stem != "__init__")


def test_the_staged_files_are_the_sources():
    static.stage()
    for module in facts.modules():
        relative = f"{module.parent.name}/{module.name}"
        assert (static.EXAMPLES / relative).read_bytes() == module.read_bytes()


# --- Shared facts -------------------------------------------------------------------

def test_chapter_titles_are_the_navigation_s_and_each_has_its_folders():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    nav = yaml.load((facts.ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader)["nav"]
    sections = {title: entries for item in nav for title, entries in item.items()
                if isinstance(entries, list)}
    for chapter, title in facts.CHAPTERS.items():
        assert f"{chapter}/index.md" in sections[title], (chapter, title)
        assert (facts.SNIPPETS / chapter).is_dir() and (facts.DOCS / chapter).is_dir()
    chapters = {p.parent.name for p in facts.DOCS.glob("*/index.md")} - {"reference"}
    assert chapters == set(facts.CHAPTERS)


def test_a_section_is_its_lines_dedented_without_other_markers():
    source = ("class A:\n    # --8<-- [start:outer]\n    def f(self):\n        # --8<-- [start:inner]\n"
              "        return 1\n        # --8<-- [end:inner]\n    # --8<-- [end:outer]\n")
    assert facts.section(source, "outer") == "def f(self):\n    return 1"
    assert facts.section(source, "inner") == "return 1"
    assert facts.section(source, "missing") is None
    assert facts.as_shown(source) == "class A:\n    def f(self):\n        return 1"


def test_the_tests_of_a_module_are_the_files_that_import_it():
    found = [p.name for p in facts.tests_of(BUS)]
    assert "test_core_concepts_event_bus.py" in found
    assert all("core_concepts_event_bus" in (facts.TESTS / "fundamentals" / name).read_text()
               for name in found)


def test_the_reader_s_environment_holds_nothing_of_ours():
    env = facts.reader_env({"REDIS_URL": "redis://127.0.0.1:1"})
    assert set(env) == {"PATH", "PYTHONHASHSEED", "PYTHONIOENCODING", "LANG", "REDIS_URL"}
    assert env["PYTHONHASHSEED"] == "0"


def test_nothing_in_the_build_imports_the_tests():
    build_code = [*facts.ROOT.joinpath("sitebuild").glob("*.py"),
                  *facts.ROOT.joinpath("tools").rglob("*.py")]
    assert len(build_code) >= 8
    for path in build_code:
        assert not re.search(r"^\s*(from|import) tests\b", path.read_text(), re.MULTILINE), path


# --- The MkDocs hook -------------------------------------------------------------

def test_the_build_names_the_page_and_its_line_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(examples, "current_url", "")
    build = hook
    source = tmp_path / "core_concepts.md"
    source.write_text("---\ndescription: a page\n---\n\n# Title\n\n<!-- example: nope.py -->\n")
    page = types.SimpleNamespace(url="fundamentals/core_concepts/", file=types.SimpleNamespace(
        abs_src_path=str(source), src_uri="fundamentals/core_concepts.md"))
    with pytest.raises(PluginError, match=r"^fundamentals/core_concepts\.md:7: example: 'nope\.py'"):
        build.on_page_markdown("", page=page, config={}, files=None)


def test_a_bench_directive_becomes_the_table_with_its_machine_and_date():
    data = next(Path(facts.BENCH_DATA).rglob("*.json"))
    name = data.relative_to(facts.BENCH_DATA).with_suffix("").as_posix()
    table = pages.expand(f"Before\n\n<!-- bench: {name} -->\n")
    assert table.startswith("Before\n\n| ") and "*Measured " in table
    with pytest.raises(pages.BenchError, match="no data file docs/data/bench/nothing/here.json"):
        pages.expand("<!-- bench: nothing/here -->\n")


def test_every_page_ends_with_the_glossary_s_abbreviations():
    html = markdown.Markdown(extensions=["abbr", "sitebuild.pages"]).convert("We use CQRS.\n")
    assert html.startswith('<p>We use <abbr title="Command Query Responsibility Segregation')


def test_a_diagram_not_drawn_yet_stops_the_build_saying_how_to_draw_it():
    with pytest.raises(diagrams.DiagramError, match="not drawn yet: run `make diagrams`"):
        pages.expand("```mermaid\nflowchart LR\n  never --> drawn\n```\n")


def test_the_hooks_run_the_pages_modules_before_the_build_and_skip_broken_pages(tmp_path, monkeypatch):
    (tmp_path / "a.md").write_text(f"<!-- example: {STDLIB} output=run -->\n<!-- example: {BUS} -->\n")
    (tmp_path / "b.md").write_text("<!-- exmaple: broken -->\n")
    (tmp_path / "c.md").write_text(f"<!-- example: {BUS} output=run -->\n")
    ran: list[str] = []

    def run(module: str) -> str:
        ran.append(module)
        if module == BUS:
            raise examples.ExampleFailed("left for the page to report")
        return "printed"

    monkeypatch.setattr(examples, "run", run)
    hook.on_pre_build({"docs_dir": str(tmp_path)})
    assert sorted(ran) == sorted([STDLIB, BUS])


def test_generated_pages_get_no_edit_link():
    files = [types.SimpleNamespace(src_uri=uri, edit_uri="edit/main/docs/" + uri)
             for uri in ("reference/cqrs.md", "examples/cqrs/x.py", "cqrs/index.md")]
    assert hook.on_files(files, config={}) is files
    assert [f.edit_uri for f in files] == [None, None, "edit/main/docs/cqrs/index.md"]


def test_the_hooks_give_a_page_its_keywords_copy_buttons_and_the_site_its_manifest(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr(examples, "current_url", "")
    page = types.SimpleNamespace(url="cqrs/query_side/", meta={
        "tags": ["projection"], "patterns": [{"name": "CQRS", "aka": ["read model"], "summary": "s"}],
        "search_terms": ["cqrs view"]}, file=types.SimpleNamespace(abs_src_path=None, src_uri="x.md"))
    assert hook.on_page_markdown("text", page=page, config={}, files=None) == "text"
    assert page.meta["tags"] == ["projection", "CQRS", "read model", "cqrs view"]
    assert examples.current_url == "cqrs/query_side/"
    built = hook.on_page_content("<pre><code>x = 1\n</code></pre>", page=page, config={}, files=None)
    assert 'class="md-code__button"' in built
    (tmp_path / "index.html").write_text(render(f"<!-- example: {BUS} -->\n"))
    hook.on_post_build({"site_dir": str(tmp_path)})
    assert '"module": "fundamentals/core_concepts_event_bus.py"' in (tmp_path / "examples.json").read_text()


def fake_tarball(tmp_path: Path, names: tuple[str, ...]) -> Path:
    import io
    import tarfile

    path = tmp_path / "pyodide.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            data = f"contents of {name}".encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_pyodide_is_fetched_once_checked_against_its_digest(tmp_path, monkeypatch):
    import base64
    import hashlib

    tarball = fake_tarball(tmp_path, pyodide.CORE)
    monkeypatch.setenv("EDD_PYODIDE_TARBALL", str(tarball))
    folder = tmp_path / "vendor" / "pyodide"
    with pytest.raises(ValueError, match="does not match its pinned sha512"):
        pyodide.fetch(folder)
    assert not folder.exists()
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    monkeypatch.setattr(pyodide, "INTEGRITY", f"sha512-{digest}")
    assert pyodide.fetch(folder) == folder
    assert (folder / "pyodide.mjs").read_text() == "contents of pyodide.mjs"
    assert (folder / "NOTICE.txt").read_text() == pyodide.NOTICE
    tarball.unlink()  # a second fetch finds the files in place and downloads nothing
    assert pyodide.fetch(folder) == folder


def test_a_tarball_without_a_core_file_is_refused(tmp_path, monkeypatch):
    import base64
    import hashlib

    tarball = fake_tarball(tmp_path, pyodide.CORE[:-1])
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    monkeypatch.setattr(pyodide, "INTEGRITY", f"sha512-{digest}")
    monkeypatch.setenv("EDD_PYODIDE_TARBALL", str(tarball))
    with pytest.raises(ValueError, match=f"has no package/{pyodide.CORE[-1]}"):
        pyodide.fetch(tmp_path / "vendor")


def test_without_pyodide_the_build_says_why_and_goes_on(monkeypatch, caplog):
    def fail(folder=None):
        raise OSError("no route to registry.npmjs.org")

    monkeypatch.setattr(pyodide, "fetch", fail)
    with caplog.at_level("INFO", logger="mkdocs.sitebuild.pyodide"):
        assert pyodide.unavailable.__wrapped__() == "no route to registry.npmjs.org"
    assert "Run buttons disabled" in caplog.text and "EDD_PYODIDE_TARBALL" in caplog.text


def test_a_package_pyodide_lacks_is_named():
    verdict = pyodide.judge("import jsonschema\n")
    assert not verdict.runnable and verdict.note.startswith("Needs jsonschema")


def test_the_zensical_command_reports_the_build(monkeypatch, capsys, tmp_path):
    import subprocess

    from sitebuild import zensical

    seen = []
    monkeypatch.setattr(zensical, "build", lambda out: seen.append(out) or
                        subprocess.CompletedProcess([], 3, "built\n", "warned\n"))
    assert zensical.main(["-d", str(tmp_path / "z")]) == 3
    assert seen == [tmp_path / "z"] and capsys.readouterr().out == "built\nwarned\n"


@pytest.mark.browser
def test_make_diagrams_draws_a_new_diagram_and_removes_an_unused_one(tmp_path, monkeypatch, capsys):
    if not Path(facts.CHROMIUM).exists():
        pytest.skip("Chromium not found: install it with `apt-get install chromium` (Debian)")
    monkeypatch.setattr(diagrams, "STORE", tmp_path)
    (tmp_path / "0000000000000000.svg").write_text("<svg/>")
    source = "flowchart LR\n    entry[Journal entry] --> coach[Coach]\n"
    monkeypatch.setattr(diagrams, "wanted", lambda: {diagrams.key(source): ("x.md", source)})
    assert diagrams.main(["--check"]) == 1
    assert "missing" in capsys.readouterr().out
    assert diagrams.main([]) == 0
    svg = (tmp_path / f"{diagrams.key(source)}.svg").read_text()
    assert svg.startswith("<svg") and "Journal entry" in svg
    assert not (tmp_path / "0000000000000000.svg").exists()
    assert re.search(r'="[^"]*\d\.\d{3}', svg) is None  # coordinates cut to hundredths
    assert diagrams.main(["--check"]) == 0
