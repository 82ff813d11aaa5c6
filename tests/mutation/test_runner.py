"""The mutation runner's own logic: test mapping, stable mutant ids, scores, the reviewed
files. Runs in ``make test`` (no mutmut needed); the mutation runs themselves do not."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.mutation import runner
from tests.mutation.runner import Equivalent, MutationError

DIFF = """--- snippets/ch/mod.py
+++ snippets/ch/mod.py
@@ -2,5 +2,5 @@
     \"\"\"Doc.\"\"\"
     if n > 0:
-        return n - 1
+        return n + 1
     return 0"""

SOURCE = '''"""Module."""


class Counter:
    @staticmethod
    def down(n: int) -> int:
        """Doc."""
        if n > 0:
            return n - 1
        return 0


def down(n: int) -> int:
    """Doc."""
    if n > 0:
        return n - 1
    return 0


def main() -> None:
    """Demo."""
    print(down(3))


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project: chapter ``ch`` with modules ``mod`` and ``mod_variant``."""
    for name in ("mod", "mod_variant"):
        (tmp_path / "snippets" / "ch").mkdir(parents=True, exist_ok=True)
        (tmp_path / "snippets" / "ch" / f"{name}.py").write_text(SOURCE)
    tests = tmp_path / "tests"
    files = {
        "ch/test_mod.py": "import os\n",
        "ch/test_mod_variant.py": "from snippets.ch import mod_variant\n",
        "ch/test_other.py": "from snippets.ch import (\n    mod_variant,\n    mod,\n)\n",
        "other/test_dotted.py": "import snippets.ch.mod as m\n",
        "other/test_path.py": "RUN = 'ch/mod.py'\n",
        "other/test_unrelated.py": "import snippets.ch.mod_variant\n",
        "site/test_site.py": "import snippets.ch.mod\n",
        "mutation/test_self.py": "import snippets.ch.mod\n",
    }
    for name, text in files.items():
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text(text)
    (tests / "ch" / "bench_mod.py").write_text("import snippets.ch.mod\n")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "SNIPPETS", tmp_path / "snippets")
    monkeypatch.setattr(runner, "TESTS", tests)
    return tmp_path


def test_a_module_maps_to_its_mirrored_test_and_every_test_file_that_uses_it(project):
    found = [p.relative_to(project / "tests").as_posix() for p in runner.tests_for("ch/mod")]
    assert found == ["ch/test_mod.py", "ch/test_other.py", "other/test_dotted.py",
                     "other/test_path.py"]


def test_a_module_with_a_longer_namesake_does_not_take_its_tests(project):
    found = [p.relative_to(project / "tests").as_posix()
             for p in runner.tests_for("ch/mod_variant")]
    assert found == ["ch/test_mod_variant.py", "ch/test_other.py", "other/test_unrelated.py"]


def test_all_modules_lists_chapter_slash_module_without_packages(project):
    (project / "snippets" / "ch" / "__init__.py").write_text("")
    assert runner.all_modules() == ["ch/mod", "ch/mod_variant"]


def test_the_inputs_hash_changes_with_the_module_or_a_test_and_nothing_else(project):
    tests = runner.tests_for("ch/mod")
    first = runner.inputs_hash("ch/mod", tests, "mutmut 3.8.1")
    assert runner.inputs_hash("ch/mod", tests, "mutmut 3.8.1") == first
    (project / "snippets" / "ch" / "mod_variant.py").write_text("x = 1\n")
    assert runner.inputs_hash("ch/mod", tests, "mutmut 3.8.1") == first
    assert runner.inputs_hash("ch/mod", tests, "mutmut 3.8.2") != first
    tests[0].write_text("import os  # changed\n")
    second = runner.inputs_hash("ch/mod", tests, "mutmut 3.8.1")
    assert second != first
    (project / "snippets" / "ch" / "mod.py").write_text(SOURCE + "\n")
    assert runner.inputs_hash("ch/mod", tests, "mutmut 3.8.1") not in (first, second)


@pytest.mark.parametrize(("mutant", "function"), [
    ("snippets.ch.mod.x_down__mutmut_3", "down"),
    ("snippets.ch.mod.x__private__mutmut_12", "_private"),
    ("snippets.ch.mod.x\u01c1Counter\u01c1down__mutmut_1", "Counter.down"),
    ("snippets.ch.mod.x\u01c1Counter\u01c1__init____mutmut_7", "Counter.__init__"),
])
def test_function_names_are_read_back_from_mutmut_names(mutant, function):
    assert runner.function_name(mutant) == function


def test_a_diff_yields_its_changed_lines_and_where_the_change_starts():
    assert runner.changed_lines(DIFF) == (["return n - 1"], ["return n + 1"], 4)


def test_the_line_is_found_in_the_module_for_functions_and_decorated_methods():
    assert runner.source_line(SOURCE, "down", ["return n - 1"], 4) == 16
    # The method's diff starts at its decorator: position 5 is its `return` line.
    assert runner.source_line(SOURCE, "Counter.down", ["return n - 1"], 5) == 9
    # A wrong position (comment lines above a function) falls back to a search.
    assert runner.source_line(SOURCE, "down", ["return n - 1"], 2) == 16
    assert runner.source_line(SOURCE, "missing", ["return n - 1"], 4) == 0


def test_a_survivor_id_depends_on_function_and_change_not_on_position():
    here = runner.survivor(SOURCE, "snippets.ch.mod.x_down__mutmut_3", "survived", DIFF)
    moved = runner.survivor("\n\n" + SOURCE, "snippets.ch.mod.x_down__mutmut_9", "survived",
                            DIFF)
    method = runner.survivor(SOURCE, "snippets.ch.mod.x\u01c1Counter\u01c1down__mutmut_3",
                             "survived", DIFF.replace("@@ -2,5", "@@ -3,5"))
    assert here == {"id": here["id"], "line": 16, "function": "down", "status": "survived",
                    "change": "return n - 1  ->  return n + 1", "mutant": "x_down__mutmut_3"}
    assert len(here["id"]) == 10
    assert moved["id"] == here["id"]
    assert moved["line"] == 18
    assert method["id"] != here["id"]
    assert method["line"] == 9


def test_identical_changes_in_one_function_get_numbered_ids():
    survivors = [{"id": "a", "line": 9, "mutant": "m_2"}, {"id": "a", "line": 4, "mutant": "m_1"},
                 {"id": "b", "line": 5, "mutant": "m_3"}, {"id": "a", "line": 12, "mutant": "m_9"}]
    runner.unique_ids(survivors)
    assert [s["id"] for s in survivors] == ["a#2", "a", "b", "a#3"]


def test_the_tally_counts_each_verdict_and_equivalents_leave_the_denominator():
    statuses = {"killed": 14, "segfault": 1, "timeout": 2, "survived": 2, "no tests": 1}
    survivors = [{"id": "s1"}, {"id": "s2"}, {"id": "s3"}]
    equivalents = [Equivalent("ch/mod", "s2", "same"), Equivalent("ch/other", "s1", "other")]
    assert runner.tally(statuses, survivors, equivalents, "ch/mod") == {
        "mutants": 20, "killed": 15, "timed_out": 2, "survived": 2, "equivalent": 1,
        "score": 89.5}
    assert [s["equivalent"] for s in survivors] == [None, "same", None]
    assert runner.tally({}, [], [], "ch/mod")["score"] == 100.0


def test_summary_rows_put_guarantee_modules_first_and_total_them(monkeypatch):
    monkeypatch.setattr(runner, "all_modules", lambda: ["a/x", "b/y", "c/z"])
    common = {"timed_out": 0, "equivalent": 0, "seconds": 10.4, "date": "2026-12-06",
              "machine": "m"}
    records = [
        {**common, "module": "b/y", "guarantee": False, "target": 80, "mutants": 10,
         "killed": 7, "survived": 3, "score": 70.0},
        {**common, "module": "a/x", "guarantee": True, "target": 90, "mutants": 20,
         "killed": 19, "survived": 0, "timed_out": 1, "score": 100.0},
    ]
    table = runner.summary(records, 90, 80)
    assert table["rows"] == [
        ["`a/x`", "yes", 20, 19, 0, 1, 0, "100.0 %", "10 s", "2026-12-06"],
        ["`b/y`", "", 10, 7, 3, 0, 0, "70.0 % (below target)", "10 s", "2026-12-06"],
        ["**All guarantee modules** (1)", "", 20, 19, 0, 1, 0, "100.0 %", "10 s", ""],
        ["**All measured modules** (2)", "", 30, 26, 3, 1, 0, "90.0 %", "21 s", ""],
    ]
    assert table["machine"] == "m"
    assert table["date"] == "2026-12-06"
    assert table["note"].startswith("2 of 3 modules measured.")


def test_check_reports_missed_targets_the_floor_and_stale_equivalents():
    records = [
        {"module": "a/x", "guarantee": True, "target": 90, "score": 89.9, "mutants": 10,
         "equivalent": 0, "killed": 8, "timed_out": 0, "survivors": [{"id": "k"}]},
        {"module": "b/y", "guarantee": False, "target": 80, "score": 50.0, "mutants": 10,
         "equivalent": 0, "killed": 5, "timed_out": 0, "survivors": []},
    ]
    stale = [Equivalent("a/x", "k", "fine"), Equivalent("a/x", "gone", "was equivalent"),
             Equivalent("c/z", "q", "not measured yet")]
    assert runner.check(records, stale, 80) == [
        "a/x: 89.9 % killed, target 90 %",
        "all measured modules: 65.0 % killed, floor 80 %",
        "equivalent.toml: a/x gone matches no surviving mutant (stale)",
    ]
    records[0].update(score=90.0, killed=9)
    records[1].update(killed=8)
    assert runner.check(records, [], 80) == []


@pytest.mark.parametrize(("text", "message"), [
    ('[[equivalent]]\nmodule = "ch/mod"\nid = "abc"\n', "equivalent.toml: entry 1 lacks reason"),
    ('[[equivalent]]\nmodule = "ch/mod"\nid = " "\nreason = "r"\n',
     "equivalent.toml: entry 1 lacks id"),
    ('[[equivalent]]\nmodule = "ch/mod"\nid = "a"\nreason = """two\nlines"""\n',
     "equivalent.toml: entry 1: the reason must be one line"),
    ('[[equivalent]]\nmodule = "ch/nope"\nid = "a"\nreason = "r"\n',
     "equivalent.toml: entry 1: no module ch/nope"),
    ('[[equivalent]]\nmodule = "ch/mod"\nid = "a"\nreason = "r"\n' * 2,
     "equivalent.toml: entry 2 repeats ch/mod a"),
])
def test_a_bad_equivalents_file_is_refused_with_the_entry_named(project, text, message):
    path = project / "equivalent.toml"
    path.write_text(text)
    with pytest.raises(MutationError) as refused:
        runner.load_equivalents(path)
    assert str(refused.value) == message


def test_a_good_equivalents_entry_is_read(project):
    path = project / "equivalent.toml"
    path.write_text('[[equivalent]]\nmodule = "ch/mod"\nid = "a#2"\nreason = " same value "\n'
                    'change = "x -> y"\n')
    assert runner.load_equivalents(path) == [Equivalent("ch/mod", "a#2", "same value")]


def test_the_committed_lists_name_real_modules():
    guarantees, target, floor = runner.load_guarantees()
    assert (target, floor) == (90, 80)
    assert "processing/event_handlers_idempotent_consumer" in guarantees
    assert len(guarantees) == len(tomllib.loads(runner.GUARANTEES.read_text())["modules"])
    runner.load_equivalents()


@pytest.mark.parametrize(("text", "message"), [
    ('target = 90\nfloor = 80\nmodules = ["ch/mod", "ch/nope"]\n',
     "guarantees.toml: no such module in snippets/: ch/nope"),
    ('target = 90\nfloor = 80\nmodules = ["ch/mod", "ch/mod"]\n',
     "guarantees.toml: listed twice: ch/mod"),
])
def test_a_bad_guarantees_file_is_refused(project, text, message):
    path = project / "guarantees.toml"
    path.write_text(text)
    with pytest.raises(MutationError) as refused:
        runner.load_guarantees(path)
    assert str(refused.value) == message


def test_a_demo_main_is_fenced_off_from_mutation_and_nothing_else_is():
    fenced = runner.without_main(SOURCE)
    lines = fenced.splitlines()
    start = lines.index("# pragma: no mutate start")
    end = lines.index("# pragma: no mutate end")
    assert lines[start + 1] == "def main() -> None:"
    assert lines[end + 1] == 'if __name__ == "__main__":'
    assert fenced.replace("# pragma: no mutate start\n", "").replace(
        "# pragma: no mutate end\n", "") == SOURCE


def test_a_main_that_is_last_or_unterminated_is_fenced_to_the_end():
    source = SOURCE.split("\n\nif __name__")[0]
    fenced = runner.without_main(source)
    assert fenced.endswith("    print(down(3))\n# pragma: no mutate end\n")


def test_a_command_line_main_and_a_module_without_main_are_left_alone():
    cli = SOURCE.replace("def main() -> None:", "def main(argv: list[str]) -> None:")
    assert runner.without_main(cli) == cli
    assert runner.without_main("x = 1\n") == "x = 1\n"


def test_mutmut_is_limited_to_the_module_and_its_tests(project):
    tests = [project / "tests" / "ch" / "test_mod.py"]
    settings = tomllib.loads(runner.mutmut_settings("ch/mod", tests))["tool"]["mutmut"]
    assert settings["only_mutate"] == ["snippets/ch/mod.py"]
    assert settings["source_paths"] == ["snippets"]
    assert settings["pytest_add_cli_args_test_selection"] == ["tests/ch/test_mod.py"]
    assert settings["pytest_add_cli_args"] == ["--no-cov", "-p", "no:cacheprovider", "-q", "-x"]
    assert settings["use_git_change_detection"] is False
    assert (settings["timeout_multiplier"], settings["timeout_constant"]) == (15.0, 1.0)


ORPHAN = """
import subprocess, sys
from tests.mutation.runner import adopt_orphans, reap_orphans
assert adopt_orphans()
# A child that starts a server in its own session, then dies: the server is orphaned.
subprocess.run([sys.executable, "-c", "import subprocess, sys; print(subprocess.Popen("
                "[sys.executable, '-c', 'import time; time.sleep(600)'],"
                " start_new_session=True).pid)"], check=True, stdout=open("pid.txt", "w"))
orphan = int(open("pid.txt").read())
assert reap_orphans() == [orphan], reap_orphans()
assert reap_orphans() == []
print("reaped", orphan)
"""


def run_script(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a script in a fresh interpreter with the project importable; it must succeed."""
    root = Path(runner.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(root)}, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux subreaper")
def test_a_server_orphaned_by_a_stopped_mutant_is_stopped_after_the_run(tmp_path):
    done = run_script(ORPHAN, tmp_path)
    assert done.stdout.startswith("reaped ")
    pid = int(done.stdout.split()[1])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_report_reapplies_the_reviewed_files_to_stored_results_and_checks_targets(
        project, monkeypatch, capsys):
    data = project / "bench"
    (data / "ch").mkdir(parents=True)
    record = {"module": "ch/mod", "statuses": {"killed": 8, "survived": 2}, "seconds": 3.0,
              "date": "2026-12-06", "machine": "m", "guarantee": False, "target": 80,
              "survivors": [{"id": "s1", "line": 3, "function": "f", "change": "a  ->  b"},
                            {"id": "s2", "line": 4, "function": "f", "change": "c  ->  d"}]}
    (data / "ch" / "mod.json").write_text(json.dumps(record))
    (project / "guarantees.toml").write_text('target = 90\nfloor = 80\nmodules = ["ch/mod"]\n')
    (project / "equivalent.toml").write_text(
        '[[equivalent]]\nmodule = "ch/mod"\nid = "s2"\nreason = "same output"\n')
    monkeypatch.setattr(runner, "DATA", data)
    monkeypatch.setattr(runner, "GUARANTEES", project / "guarantees.toml")
    monkeypatch.setattr(runner, "EQUIVALENTS", project / "equivalent.toml")

    assert runner.main(["--report", "--check"]) == 1
    assert capsys.readouterr().out == "!! ch/mod: 88.9 % killed, target 90 %\n"
    stored = json.loads((data / "ch" / "mod.json").read_text())
    assert (stored["guarantee"], stored["target"], stored["score"]) == (True, 90, 88.9)
    assert [s["equivalent"] for s in stored["survivors"]] == [None, "same output"]
    table = json.loads((data / "summary.json").read_text())
    assert table["rows"][0] == ["`ch/mod`", "yes", 10, 8, 1, 0, 1, "88.9 % (below target)",
                                "3 s", "2026-12-06"]
    assert runner.main(["--report"]) == 0


def test_a_selector_that_matches_nothing_is_refused(project, monkeypatch, capsys):
    (project / "guarantees.toml").write_text('target = 90\nfloor = 80\nmodules = []\n')
    (project / "equivalent.toml").write_text("")
    monkeypatch.setattr(runner, "GUARANTEES", project / "guarantees.toml")
    monkeypatch.setattr(runner, "EQUIVALENTS", project / "equivalent.toml")
    assert runner.main(["nothing_like_this"]) == 2
    assert capsys.readouterr().err == "mutation: no module matches nothing_like_this\n"


@pytest.mark.parametrize(("change", "equivalent"), [
    ('"INSERT INTO inbox (key) VALUES (?)"  ->  "insert into inbox (key) values (?)"', True),
    ('"INSERT INTO inbox (key) VALUES (?)"  ->  "INSERT INTO INBOX (KEY) VALUES (?)"', True),
    (('conn.execute("UPDATE t SET n = ?", (m.data["words"],))  ->  '
     'conn.execute("update t set n = ?", (m.data["words"],))'), True),
    # Same line, but the changed text is a dict key, not SQL.
    (('conn.execute("UPDATE t SET n = ?", (m.data["words"],))  ->  '
     'conn.execute("UPDATE t SET n = ?", (m.data["WORDS"],))'), False),
    # A quoted SQL literal's case is data.
    ('"UPDATE jobs SET status = \'done\'"  ->  "update jobs set status = \'DONE\'"', False),
    ('"UPDATE jobs SET status = \'done\'"  ->  "update jobs set status = \'done\'"', False),
    # Transaction control, and a statement's continuation in a string of its own.
    ('db.execute("BEGIN IMMEDIATE")  ->  db.execute("begin immediate")', True),
    ('db.execute("COMMIT")  ->  db.execute("commit")', True),
    ('db.execute("ROLLBACK")  ->  db.execute("rollback")', True),
    ('"ORDER BY id LIMIT ?", (batch,)).fetchall()  ->  "ORDER BY ID LIMIT ?", (batch,)).fetchall()',
     True),
    ('"FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED"  ->  "from jobs order by id for update skip locked"',
     True),
    ('"type TEXT NOT NULL, data TEXT NOT NULL)")  ->  "TYPE TEXT NOT NULL, DATA TEXT NOT NULL)")',
     True),
    ('"target INTEGER, percent INTEGER)")  ->  "target integer, percent integer)")', True),
    ('"AND version = ?", (self.name, version))  ->  "and version = ?", (self.name, version))', True),
    ('"AND state = \'live\'", (self.name,))  ->  "and state = \'live\'", (self.name,))', False),
    # Not SQL: an error message.
    ('raise ValueError("begin with a letter")  ->  raise ValueError("BEGIN WITH A LETTER")', False),
    (('raise ValueError("values must be set where needed")  ->  '
     'raise ValueError("VALUES MUST BE SET WHERE NEEDED")'), False),
    # Not a case change.
    ('"SELECT 1"  ->  "XXSELECT 1XX"', False),
    ('"SELECT n FROM t WHERE n > 0"  ->  "SELECT n FROM t WHERE n >= 0"', False),
    ('"SELECT 1"  ->  "SELECT 1"', False),
])
def test_the_sql_case_rule_accepts_only_case_changes_inside_sql_text(change, equivalent):
    assert runner.sql_case({"change": change}) is equivalent


def test_a_declared_rule_marks_matching_survivors_and_an_unknown_rule_is_refused(project):
    path = project / "equivalent.toml"
    path.write_text('[[rule]]\nid = "sql-case"\nreason = "SQL ignores case"\n')
    equivalents = runner.load_equivalents(path)
    assert equivalents == [Equivalent("*", "sql-case", "SQL ignores case")]
    survivors = [{"id": "a", "change": '"SELECT 1"  ->  "select 1"'},
                 {"id": "b", "change": '"SELECT 1"  ->  "SELECT 2"'}]
    assert runner.tally({"survived": 2}, survivors, equivalents, "ch/mod")["equivalent"] == 1
    assert survivors[0]["equivalent"] == "sql-case: SQL ignores case"
    assert survivors[1]["equivalent"] is None
    path.write_text('[[rule]]\nid = "typo"\nreason = "r"\n')
    with pytest.raises(MutationError) as refused:
        runner.load_equivalents(path)
    assert str(refused.value) == "equivalent.toml: no rule 'typo'; known: sql-case"
    path.write_text('[[rule]]\nid = "sql-case"\n')
    with pytest.raises(MutationError) as refused:
        runner.load_equivalents(path)
    assert str(refused.value) == "equivalent.toml: rule sql-case needs a one-line reason"


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.4, "0 s"), (70.3, "70 s"), (119.4, "119 s"), (120, "2 min"), (1584, "26 min")])
def test_times_are_shown_in_seconds_up_to_two_minutes_then_in_minutes(seconds, shown):
    assert runner.duration(seconds) == shown


def test_an_async_demo_main_is_fenced_off_too():
    source = SOURCE.replace("def main() -> None:", "async def main() -> None:")
    lines = runner.without_main(source).splitlines()
    assert lines[lines.index("# pragma: no mutate start") + 1] == "async def main() -> None:"
    assert lines[lines.index("# pragma: no mutate end") + 1] == 'if __name__ == "__main__":'


# ---------------------------------------------------------------- shared engines
def test_a_module_gets_the_shared_engines_its_tests_or_their_conftest_name(project):
    tests = project / "tests"
    (tests / "conftest.py").write_text("from tests.engines import postgres_db, rabbitmq_server\n")
    (tests / "ch" / "test_pg.py").write_text("def test_x(postgres_db): pass\n")
    (tests / "ch" / "test_fresh.py").write_text("def test_x(fresh_engine_env): pass\n")
    (tests / "other" / "conftest.py").write_text(
        "def backend(request): return request.getfixturevalue('rabbitmq_server')\n")
    (tests / "other" / "deep").mkdir()
    (tests / "other" / "deep" / "test_deep.py").write_text("def test_x(): pass\n")
    assert runner.engines_for([tests / "ch" / "test_mod.py"]) == set()  # tests/conftest.py: no
    assert runner.engines_for([tests / "ch" / "test_pg.py"]) == {"postgres"}
    assert runner.engines_for([tests / "other" / "deep" / "test_deep.py"]) == {"rabbitmq"}
    assert runner.engines_for([tests / "ch" / "test_fresh.py"]) == {"postgres", "rabbitmq"}
    assert runner.engines_for([tests / "ch" / "test_mod.py",
                               tests / "ch" / "test_pg.py"]) == {"postgres"}
    (tests / "ch" / "test_pg.py").write_text("def test_x(postgres_dbs, my_rabbitmq_server): pass\n")
    assert runner.engines_for([tests / "ch" / "test_pg.py"]) == set()


KEPT = """
import os, subprocess, sys, time
from tests.mutation.runner import adopt_orphans, reap_orphans
assert adopt_orphans()
engine = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],
                          start_new_session=True)
subprocess.run([sys.executable, "-c", "import subprocess, sys; print(subprocess.Popen("
                "[sys.executable, '-c', 'import time; time.sleep(600)'],"
                " start_new_session=True).pid)"], check=True, stdout=open("pid.txt", "w"))
orphan = int(open("pid.txt").read())
exited = subprocess.run([sys.executable, "-c", "import os, subprocess, sys; print(subprocess.Popen("
                         "[sys.executable, '-c', 'import time; time.sleep(1)'],"
                         " start_new_session=True).pid)"], check=True, capture_output=True)
exited = int(exited.stdout)
deadline = time.monotonic() + 60  # a safety net: it exits after one second
while open(f"/proc/{exited}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    assert time.monotonic() < deadline
    time.sleep(0.05)  # until it has exited and waits, a zombie, for its new parent
assert reap_orphans(keep={engine.pid}) == [orphan]  # the zombie is reaped, not reported
assert not os.path.exists(f"/proc/{exited}")
assert engine.poll() is None
assert reap_orphans() == [engine.pid]
print("kept", engine.pid)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux subreaper")
def test_the_shared_engines_are_not_taken_for_a_mutants_leftovers(tmp_path):
    done = run_script(KEPT, tmp_path)
    assert done.stdout.startswith("kept ")


SESSION = '''
import asyncio, json, os

import aio_pika
import psycopg

from tests.engines import engine_dirs, postgres_db, postgres_server, rabbitmq_server


def test_a_session_on_shared_engines(postgres_db, rabbitmq_server):
    with psycopg.connect(postgres_db) as conn:  # the same table name in every session
        conn.execute("CREATE TABLE entries (id int)")

    async def queue_was_empty() -> bool:  # the same queue name in every session
        async with await aio_pika.connect(rabbitmq_server.url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("entries", durable=True)
            await channel.default_exchange.publish(aio_pika.Message(b"1"), "entries")
            return queue.declaration_result.message_count == 0

    assert asyncio.run(queue_was_empty())
    with open(os.environ["SEEN"], "a") as seen:
        seen.write(json.dumps([postgres_db, rabbitmq_server.url]) + "\\n")


def test_another_test_gets_another_database(postgres_db):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE entries (id int)")
'''


def test_shared_engines_serve_every_session_isolated_and_stop_when_the_run_ends(tmp_path):
    """Two sessions at once, then a third, on one shared PostgreSQL and RabbitMQ: each
    test its own database, each session its own virtual host, removed after it; the
    servers outlive the sessions and stop with the run."""
    root = Path(runner.__file__).resolve().parents[2]
    (tmp_path / "test_session.py").write_text(SESSION)
    shared = runner.SharedEngines(tmp_path)
    try:
        assert shared.need(set()) == {}
        env = shared.need({"postgres", "rabbitmq"})
        assert env == {"EDD_SHARED_ENGINES": str(tmp_path / "engines.json")}
        entries = json.loads((tmp_path / "engines.json").read_text())
        assert sorted(entries) == ["postgres", "rabbitmq"]
        pids = shared.pids()
        assert len(pids) == 3  # PostgreSQL, RabbitMQ and its epmd
        assert shared.need({"postgres"}) == env and shared.pids() == pids  # not started again

        def session() -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                 "no:randomly", str(tmp_path / "test_session.py")], cwd=tmp_path, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONPATH": str(root),
                     "SEEN": str(tmp_path / "seen.txt")})

        first, second = session(), session()
        third = [first.communicate(timeout=240), second.communicate(timeout=240)]
        third.append(session().communicate(timeout=240))
        for out, _ in third:
            assert "2 passed" in out, out
        seen = [json.loads(line) for line in (tmp_path / "seen.txt").read_text().splitlines()]
        assert len(seen) == 3
        databases = [db for db, _ in seen]
        vhosts = [url.rsplit("/", 1)[1] for _, url in seen]
        assert len(set(databases)) == 3 and len(set(vhosts)) == 3
        assert all(db.startswith(entries["postgres"]["url"].rsplit("/", 1)[0] + "/test_")
                   for db in databases)
        assert all(url.startswith(entries["rabbitmq"]["url"]) for _, url in seen)
        assert all(re.fullmatch(r"session_\d+_[0-9a-f]{6}_0", v) for v in vhosts)
        assert shared.pids() == pids  # no session stopped a shared server
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{entries['rabbitmq']['management_port']}/api/vhosts",
                headers={"authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}), timeout=30) as reply:
            assert [v["name"] for v in json.load(reply)] == ["/"]  # each session's removed
    finally:
        shared.stop()
    assert [p.poll() is not None for p in shared.processes] == [True, True, True]
    assert not (tmp_path / "engines.json").exists()
    assert all(not path.exists() for path in shared.dirs)


def test_a_module_run_as_a_script_from_its_directory_finds_mutmuts_settings(project):
    (project / "snippets" / "ch" / "__pycache__").mkdir()
    (project / "snippets" / "README.md").write_text("")
    runner.let_scripts_run(project)
    written = project / "snippets" / "ch" / "pyproject.toml"
    assert tomllib.loads(written.read_text())["tool"]["mutmut"] == {"source_paths": ["."]}
    assert sorted(p.relative_to(project).as_posix()
                  for p in project.rglob("pyproject.toml")) == ["snippets/ch/pyproject.toml"]
    written.write_text("[tool.mutmut]\nsource_paths = ['..']\n")
    runner.let_scripts_run(project)  # an existing file is left alone
    assert written.read_text() == "[tool.mutmut]\nsource_paths = ['..']\n"


def test_a_run_cut_short_by_sigterm_still_stops_the_shared_engines(monkeypatch):
    stopped, reaped = [], []
    monkeypatch.setattr(runner.SharedEngines, "stop", lambda self: stopped.append(self.path))
    monkeypatch.setattr(runner, "reap_orphans", lambda keep: reaped.append(keep) or [])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_, runner.shared_engines() as shared:
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)
    assert exit_.value.code == 128 + signal.SIGTERM
    assert stopped == [shared.path] and reaped == [set()]
    assert signal.getsignal(signal.SIGTERM) is before
    assert not shared.path.parent.exists()


def test_a_shared_engine_that_exits_stops_the_run_before_its_results_are_kept(tmp_path):
    shared = runner.SharedEngines(tmp_path)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait(60)
    try:
        shared.processes = [alive]
        shared.check()  # all running: nothing to say
        assert shared.pids() == {alive.pid}
        shared.processes = [alive, dead]
        with pytest.raises(MutationError, match=rf"^a shared engine exited during the run: "
                                                rf"{re.escape(sys.executable)} \(exit 3\); "):
            shared.need({"postgres"})
        assert shared.entries == {} and shared.pids() == {alive.pid}
    finally:
        alive.kill()
        alive.wait(60)


def test_the_scratch_copy_holds_every_project_package_the_tests_import():
    """A mutant's tests import tests/conftest.py and its imports: each project package they
    name must be in the scratch copy and in mutmut's mutants/ folder, or mutmut fails
    before it runs one mutant."""
    import ast

    imported = set()
    for path in (runner.ROOT / "tests").rglob("*.py"):
        if "mutation" in path.parts or "site" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    ours = {name for name in imported if (runner.ROOT / name).is_dir()
            and (runner.ROOT / name / "__init__.py").is_file()}
    assert ours >= {"snippets", "sitebuild", "tests"}
    assert ours <= set(runner.COPIED), ours - set(runner.COPIED)
    # mutmut then copies sources and tests into mutants/, and what also_copy names.
    in_mutants = {"snippets", "tests", *runner.ALSO_COPY}
    assert ours <= in_mutants, ours - in_mutants
    assert f"also_copy = {json.dumps(list(runner.ALSO_COPY))}" in runner.mutmut_settings("a/b", [])
