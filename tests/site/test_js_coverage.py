"""How Chromium's coverage of the site's scripts is merged and counted (no browser).

V8 reports, per document, nested ranges with counts; tests/site/js_coverage.py turns
them into covered lines. These tests pin the merging rules with exact numbers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.site import js_coverage as jc


def function(*ranges: tuple[int, int, int]) -> dict:
    """A function as V8 reports it: its own range first, then its blocks."""
    return {"functionName": "", "isBlockCoverage": True,
            "ranges": [{"startOffset": s, "endOffset": e, "count": c} for s, e, c in ranges]}


# A script of 9 lines, as the browser runs it; offsets in the comments.
SCRIPT = (
    "// set up\n"                          # 0-9     a comment only
    "function f(a) {\n"                    # 10-25   f's range: 10-76
    "  if (a) {\n"                         # 26-36   the block: 35-61
    "    return 1; // one\n"               # 37-57   after `return 1;`: 50-61
    "  }\n"                                # 58-61
    "\n"                                   # 62      blank
    "  return 2;\n"                        # 63-74
    "}\n"                                  # 75-76
    "f(0);\n"                              # 77-82
)
RAN_ELSE = [function((0, 83, 1)), function((10, 76, 1), (35, 61, 0))]
RAN_IF = [function((0, 83, 1)), function((10, 76, 1), (50, 61, 0))]


def test_the_script_under_test_has_the_offsets_its_comments_say():
    assert len(SCRIPT) == 83
    assert SCRIPT.index("function") == 10
    assert SCRIPT.index("{\n    return") == 35
    assert SCRIPT.index("; // one") == 49
    assert SCRIPT.index("  }") == 58
    assert SCRIPT.index("}\nf(0)") == 75
    assert SCRIPT.index("f(0)") == 77


def test_a_block_that_never_ran_is_a_hole_in_the_function_that_did():
    assert jc.covered_ranges(RAN_ELSE) == [(0, 35), (61, 83)]
    executable, covered = jc.line_coverage(SCRIPT, jc.covered_ranges(RAN_ELSE))
    assert executable == [2, 3, 4, 5, 7, 8, 9]  # the comment and the blank line do not count
    assert covered == [2, 3, 7, 8, 9]  # `if (a) {` has code before the block


def test_the_innermost_range_decides_even_inside_a_block_that_did_not_run():
    ranges = [function((0, 100, 1), (20, 60, 0), (30, 40, 3)), function((45, 50, 2))]
    assert jc.covered_ranges(ranges) == [(0, 20), (30, 40), (45, 50), (60, 100)]


def test_a_function_that_never_ran_is_uncovered_though_its_script_ran():
    never = [function((0, 83, 1)), function((10, 76, 0), (35, 61, 0))]
    assert jc.covered_ranges(never) == [(0, 10), (76, 83)]
    assert jc.line_coverage(SCRIPT, jc.covered_ranges(never)) == ([2, 3, 4, 5, 7, 8, 9], [9])


def test_ranges_in_any_order_and_a_zero_count_script_give_the_same_holes():
    assert jc.covered_ranges([function((10, 20, 0)), function((0, 30, 5))]) == [(0, 10), (20, 30)]
    assert jc.covered_ranges([function((0, 30, 0), (5, 8, 1))]) == [(5, 8)]
    assert jc.covered_ranges([function((0, 30, 0))]) == []
    assert jc.covered_ranges([]) == []


def test_a_block_that_starts_where_its_function_starts_is_inside_it():
    assert jc.covered_ranges([function((0, 10, 1), (0, 4, 0))]) == [(4, 10)]
    assert jc.covered_ranges([function((0, 4, 0), (0, 10, 1))]) == [(4, 10)]


def test_adjacent_covered_ranges_are_merged_into_one():
    assert jc.covered_ranges([function((0, 10, 1), (0, 4, 2), (4, 10, 7))]) == [(0, 10)]
    assert jc.covered_ranges([function((0, 10, 1), (4, 6, 0), (6, 8, 0))]) == [(0, 4), (8, 10)]


def test_two_documents_of_the_same_script_cover_what_either_ran():
    ran_if, ran_else = jc.covered_ranges(RAN_IF), jc.covered_ranges(RAN_ELSE)
    assert ran_if == [(0, 50), (61, 83)]
    assert jc.union([ran_if, ran_else]) == [(0, 50), (61, 83)]
    assert jc.line_coverage(SCRIPT, jc.union([ran_if, ran_else])) == (
        [2, 3, 4, 5, 7, 8, 9], [2, 3, 4, 7, 8, 9])
    assert jc.line_coverage(SCRIPT, jc.union([ran_else, [(60, 61)]]))[1] == [2, 3, 5, 7, 8, 9]
    assert jc.union([[(5, 9)], [(0, 3)], [(3, 4), (20, 30)], [(8, 12)]]) == [
        (0, 4), (5, 12), (20, 30)]
    assert jc.union([]) == []


def code_by_line(source: str) -> list[str]:
    """The characters of code of each line, as code_mask sees them."""
    mask = jc.code_mask(source)
    lines, current = [], []
    for char, code in zip(source, mask):
        if char == "\n":
            lines.append("".join(current))
            current = []
        elif code:
            current.append(char)
    return [*lines, "".join(current)]


def test_comments_strings_templates_and_regular_expressions_are_told_apart():
    source = (
        "/* a block\n"                              # 1 comment
        "   comment */\n"                           # 2 comment
        "   \t\n"                                   # 3 blank
        'const url = "http://x"; // not code\n'     # 4 code (the // is in a string)
        "const t = `a ${b /* in */} //c`;\n"        # 5 code
        "const r = /\\/*x/g; /* tail */\n"          # 6 code (a regex, not a comment)
        "x = a / b; // divide\n"                    # 7 code
        "/* one */ /* two */\n"                     # 8 comment
        "return /[//]/.test(s) + 'it\\'s // no'\n"  # 9 code: a regex after return
        "y = /[/\"]/.test(s) + \"a // b\";\n"          # 10 code: a / in a character class
        "z = $in / 2; // half\n"                    # 11 code: $in is a name, not `in`
        "  // indented comment"                     # 12 comment, no newline at the end
    )
    assert code_by_line(source) == [
        "", "", "", 'consturl="http://x";', "constt=`a${b}//c`;", "constr=/\\/*x/g;",
        "x=a/b;", "", "return/[//]/.test(s)+'it\\'s//no'", 'y=/[/"]/.test(s)+"a//b";',
        "z=$in/2;", ""]
    executable, covered = jc.line_coverage(source, [(0, len(source))])
    assert executable == covered == [4, 5, 6, 7, 9, 10, 11]


def test_a_brace_after_a_template_literal_closes_its_block_not_the_template():
    source = "function f() {\n  return `<${a}>`;\n}\n// done\n"
    assert code_by_line(source) == ["functionf(){", "return`<${a}>`;", "}", "", ""]


def test_a_line_is_covered_if_any_of_its_code_ran_and_offsets_count_utf16_units():
    source = "a();\nb('😀'); c();\nd();\n"  # the emoji is two UTF-16 units, one character
    assert jc.line_coverage(source, [(0, 1)]) == ([1, 2, 3], [1])
    c_at = 5 + len("b('😀'); ".encode("utf-16-le")) // 2  # where V8 sees c
    assert c_at == 14
    assert jc.line_coverage(source, [(c_at, c_at + 1)]) == ([1, 2, 3], [2])
    d_at = source.index("d") + 1  # V8's offset of d: one more than Python's
    assert jc.line_coverage(source, [(d_at, d_at + 1)]) == ([1, 2, 3], [3])
    assert jc.line_coverage(source, [(d_at - 1, d_at)]) == ([1, 2, 3], [])  # the newline
    assert jc.line_coverage(source, [(d_at, d_at + 99)]) == ([1, 2, 3], [3])
    assert jc.line_coverage(source, []) == ([1, 2, 3], [])


def test_only_the_site_scripts_are_kept_from_the_coverage():
    site = "http://127.0.0.1:8000/"
    assert jc.script_name(site + "assets/javascripts/site.js") == "site.js"
    assert jc.script_name(site + "sub/assets/javascripts/run.js?v=1#x") == "run.js"
    assert jc.script_name(site + "assets/javascripts/checklist.js") == "checklist.js"
    assert jc.script_name(site + "assets/javascripts/run-worker.js") == "run-worker.js"
    assert jc.script_name(site + "assets/javascripts/other.js") is None
    assert jc.script_name(site + "assets/javascripts/site.js.map") is None
    assert jc.script_name(site + "assets/site.js") is None
    assert jc.script_name(site) is None


def test_documents_of_every_browser_are_merged_per_script_and_totalled():
    sources = {"site.js": SCRIPT, "run.js": "go();\n\nstop();\n", "checklist.js": "x();\n"}
    records = [
        {"loaded": 3, "lost": 1, "documents": [
            {"script": "site.js", "functions": RAN_ELSE},
            {"script": "run.js", "functions": [function((0, 15, 1), (6, 15, 0))]},
            {"script": "run-worker.js", "functions": [function((0, 9, 1))]}]},
        {"loaded": 2, "lost": 0, "documents": [
            {"script": "site.js", "functions": RAN_IF},
            {"script": "site.js", "functions": [function((0, 99, 1))]},  # another version
            {"script": "site.js", "sha1": jc.digest(SCRIPT + " "), "functions": RAN_IF},  # too
            # a second take of a document reports only what ran since the first
            {"script": "checklist.js", "sha1": jc.digest("x();\n"),
             "functions": [function((0, 3, 1))]}]},
    ]
    result = jc.measure(records, sources)
    assert result["scripts"]["site.js"] == {
        "covered": 6, "executable": 7, "percent": 85.7, "documents": 2, "other_versions": 2,
        "uncovered_lines": ["5"]}
    assert result["scripts"]["run.js"] == {
        "covered": 1, "executable": 2, "percent": 50.0, "documents": 1, "other_versions": 0,
        "uncovered_lines": ["3"]}
    assert result["scripts"]["checklist.js"] == {
        "covered": 1, "executable": 1, "percent": 100.0, "documents": 1, "other_versions": 0,
        "uncovered_lines": []}
    assert result["total"] == {"scripts": ["site.js", "run.js", "checklist.js"],
                               "covered": 8, "executable": 10, "percent": 80.0}
    assert result["documents_loaded"] == 5
    assert result["documents_lost_to_clicks"] == 1


def test_uncovered_lines_are_reported_as_runs():
    assert jc.spans([3, 4, 5, 9, 11, 12]) == ["3-5", "9", "11-12"]
    assert jc.spans([7]) == ["7"]
    assert jc.spans([]) == []


def test_percent_is_rounded_down_so_79_99_is_not_80():
    assert jc.percent(7999, 10000) == 79.9
    assert jc.percent(8000, 10000) == 80.0
    assert jc.percent(2, 3) == 66.6
    assert jc.percent(0, 0) == 0.0


def item(path: Path, name: str, browser: bool) -> SimpleNamespace:
    return SimpleNamespace(path=path, nodeid=f"tests/site/{path.name}::{name}",
                           fixturenames=["browser", "site_url"] if browser else ["built_site"])


def every_site_test(browser: bool) -> list[SimpleNamespace]:
    return [item(path, "test_x", browser) for path in sorted(jc.SITE_TESTS.glob("test_*.py"))]


def test_a_full_run_is_every_site_test_file_and_every_browser_test():
    browser_tests, others = every_site_test(True)[:3], every_site_test(False)[3:]
    assert jc.selection([*browser_tests, *others], []) == {
        "full": True, "missing_files": [], "deselected_browser_tests": [], "browser_tests": 3}
    # -m browser leaves the others out: still every browser test
    assert jc.selection(browser_tests, others)["full"] is True


def test_a_missing_file_or_a_deselected_browser_test_is_not_a_full_run():
    tests = every_site_test(True)
    missing = jc.selection(tests[1:], [])
    assert missing["full"] is False
    assert missing["missing_files"] == [tests[0].path.name]
    left_out = jc.selection(tests[1:], tests[:1])
    assert left_out["full"] is False
    assert left_out["deselected_browser_tests"] == [tests[0].nodeid]
    assert jc.selection([], every_site_test(False))["browser_tests"] == 0
    assert jc.selection(every_site_test(False), [])["full"] is False  # no browser test at all


@pytest.mark.parametrize(("full", "percent", "status", "expected"), [
    (True, 79.9, 0, 1),   # a full, passing run below the threshold fails
    (True, 80.0, 0, 0),   # at the threshold it passes
    (False, 10.0, 0, 0),  # a subset of the tests: reported, not checked
    (True, 10.0, 1, 1),   # a failing run keeps its own status
    (True, 10.0, 2, 2),   # an interrupted one too
    (True, 90.0, 1, 1),
])
def test_only_a_full_passing_run_below_the_threshold_is_failed(full, percent, status, expected):
    assert jc.exit_status(full, percent, status) == expected


# --- The end of a run: the controller merges, reports, and decides -----------------------

class Reporter:
    """Collects what the terminal summary writes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"== {title}")

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


def end_of_run(tmp_path: Path, monkeypatch, *, worker: bool = False,
               full: bool | tuple[bool, ...] = True,
               records: list[str] | None = None, status: int = 0):
    """Call finish() as pytest would at the end of a session run by pytest-xdist."""
    sources = tmp_path / "sources"
    sources.mkdir(parents=True)
    (sources / "site.js").write_text(SCRIPT, encoding="utf-8")
    (sources / "run.js").write_text("go();\n", encoding="utf-8")
    (sources / "checklist.js").write_text("x();\n", encoding="utf-8")
    monkeypatch.setattr(jc, "SOURCES", sources)
    monkeypatch.setattr(jc, "REPORT", tmp_path / "artifacts" / "js-coverage.json")
    base = tmp_path / "run" / ("popen-gw0" if worker else "")
    base.mkdir(parents=True, exist_ok=True)
    config = SimpleNamespace(
        stash=pytest.Stash(), _tmp_path_factory=SimpleNamespace(getbasetemp=lambda: base),
        pluginmanager=SimpleNamespace(has_plugin=lambda name: name == "dsession" and not worker))
    if worker:
        config.workerinput = {"workerid": "gw0"}
    shared = tmp_path / "run" / "js-coverage"
    if records is not None:
        shared.mkdir(parents=True, exist_ok=True)
        (shared / "coverage-gw0.jsonl").write_text("".join(r + "\n" for r in records))
        for n, each in enumerate((full,) if isinstance(full, bool) else full):
            (shared / f"selection-gw{n}.json").write_text(json.dumps({"full": each}))
    session = SimpleNamespace(config=config, exitstatus=pytest.ExitCode(status), items=[])
    jc.finish(session, session.exitstatus)
    return session, config


def record(*documents: list[dict]) -> str:
    return json.dumps({"module": "m", "loaded": 4, "lost": 1, "documents": [
        {"script": "site.js", "functions": functions} for functions in documents]})


def test_a_full_passing_run_below_the_threshold_fails_and_says_why(tmp_path, monkeypatch):
    session, config = end_of_run(tmp_path, monkeypatch, records=[record(RAN_ELSE)])
    assert session.exitstatus == 1
    written = json.loads(jc.REPORT.read_text())
    assert written["total"] == {"scripts": ["site.js", "run.js", "checklist.js"],
                                "covered": 5, "executable": 9, "percent": 55.5}
    assert (written["full_run"], written["failed"], written["threshold"]) == (True, True, 80.0)
    assert written["scripts"]["site.js"]["uncovered_lines"] == ["4-5"]
    reporter = Reporter()
    jc.summary(reporter, config)
    assert reporter.lines == [
        "== JavaScript coverage (Chromium's V8, lines)",
        "site.js             5 / 7      71.4 %   (1 distinct results)",
        "run.js              0 / 1       0.0 %   (0 distinct results)",
        "checklist.js        0 / 1       0.0 %   (0 distinct results)",
        "total               5 / 9      55.5 %   (required: 80 % on a full run of tests/site)",
        "run-worker.js: not measured (it runs in a worker, which the page's session does not see)",
        "4 documents loaded; 1 left by a click before their coverage could be taken (not counted)",
        ("FAIL Required JavaScript coverage of 80 % not reached: total 55.5 % "
         "(see test-artifacts/js-coverage.json)")]


def test_a_failing_run_keeps_its_status_and_a_partial_run_is_only_reported(tmp_path, monkeypatch):
    failing, _ = end_of_run(tmp_path / "a", monkeypatch, records=[record(RAN_ELSE)], status=1)
    assert failing.exitstatus == 1
    partial, config = end_of_run(tmp_path / "b", monkeypatch, full=False, records=[record(RAN_ELSE)])
    assert partial.exitstatus == 0
    reporter = Reporter()
    jc.summary(reporter, config)
    assert reporter.lines[-1] == "Not a full run of the browser tests: reported, not checked."
    # every worker must have collected every browser test, and one must have said so
    one_of_two, _ = end_of_run(tmp_path / "c", monkeypatch, full=(True, False),
                               records=[record(RAN_ELSE)])
    assert one_of_two.exitstatus == 0
    unknown, _ = end_of_run(tmp_path / "d", monkeypatch, full=(), records=[record(RAN_ELSE)])
    assert unknown.exitstatus == 0
    both, _ = end_of_run(tmp_path / "e", monkeypatch, full=(True, True), records=[record(RAN_ELSE)])
    assert both.exitstatus == 1


def test_the_check_is_on_the_total_of_the_three_scripts(tmp_path, monkeypatch):
    others = json.dumps({"module": "m", "loaded": 1, "lost": 0, "documents": [
        {"script": "run.js", "functions": [function((0, 6, 1))]},
        {"script": "checklist.js", "functions": [function((0, 5, 1))]}]})
    whole = [function((0, 83, 1))]
    alone, _ = end_of_run(tmp_path / "a", monkeypatch, records=[record(whole)])
    assert json.loads(jc.REPORT.read_text())["total"]["percent"] == 77.7  # 7 of 9
    assert alone.exitstatus == 1
    below, _ = end_of_run(tmp_path / "b", monkeypatch, records=[record(RAN_ELSE), others])
    assert json.loads(jc.REPORT.read_text())["total"]["percent"] == 77.7  # 5 + 1 + 1 of 9
    assert below.exitstatus == 1
    every, config = end_of_run(tmp_path / "c", monkeypatch, records=[record(RAN_ELSE, whole), others])
    assert json.loads(jc.REPORT.read_text())["total"] == {
        "scripts": ["site.js", "run.js", "checklist.js"], "covered": 9, "executable": 9,
        "percent": 100.0}
    assert every.exitstatus == 0
    assert config.stash[jc.RESULT]["failed"] is False


def test_a_worker_leaves_its_selection_for_the_controller(tmp_path, monkeypatch):
    session, config = end_of_run(tmp_path, monkeypatch, worker=True, records=[record(RAN_ELSE)])
    left = json.loads((tmp_path / "run" / "js-coverage" / "selection-gw0.json").read_text())
    assert left == {"full": False, "missing_files": sorted(
        p.name for p in jc.SITE_TESTS.glob("test_*.py")), "deselected_browser_tests": [],
        "browser_tests": 0}
    assert session.exitstatus == 0
    assert jc.RESULT not in config.stash
    assert not jc.REPORT.exists()


def test_no_browser_started_means_nothing_to_report(tmp_path, monkeypatch):
    session, config = end_of_run(tmp_path, monkeypatch, records=None)
    assert session.exitstatus == 0
    assert jc.RESULT not in config.stash
    reporter = Reporter()
    jc.summary(reporter, config)
    assert reporter.lines == []


def test_coverage_that_cannot_be_read_fails_a_passing_run_clearly(tmp_path, monkeypatch):
    session, config = end_of_run(tmp_path, monkeypatch, records=["{not json"])
    assert session.exitstatus == 1
    reporter = Reporter()
    jc.summary(reporter, config)
    assert reporter.lines[1].startswith(
        "FAIL JavaScript coverage could not be measured: JSONDecodeError: ")
    failing, _ = end_of_run(tmp_path / "b", monkeypatch, records=["{not json"], status=3)
    assert failing.exitstatus == 3
