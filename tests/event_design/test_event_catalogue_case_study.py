"""The catalogue is consistent: valid schemas and examples, well-named types, parties on both
ends, and the page generated from it at build time shows every type and version."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from snippets.event_design import event_catalogue_case_study as case
from snippets.event_design.event_catalogue_case_study import (
    CATALOGUE,
    EventType,
    as_json,
    main,
    problems,
)
from snippets.event_design.event_naming_lint import GLOSSARY, lint
from snippets.event_design.event_versioning_upcasters import StoredEvent, upcast


def test_the_catalogue_has_no_problems():
    assert problems() == []


@pytest.mark.parametrize("event", CATALOGUE, ids=lambda e: e.type)
def test_every_event_type_passes_the_naming_lint(event):
    assert lint(event.type, GLOSSARY) == []


@pytest.mark.parametrize("event", CATALOGUE, ids=lambda e: e.type)
def test_every_example_is_valid_and_every_old_one_upcasts_to_a_valid_latest(event):
    latest = Draft202012Validator(event.schemas[event.latest])
    for version, example in event.examples.items():
        assert Draft202012Validator(event.schemas[version]).is_valid(example)
        if event.latest > 1:  # types with one version need no upcaster
            current = upcast(StoredEvent(event.type, version, example))
            assert current.version == event.latest and latest.is_valid(current.data)


def test_every_application_that_consumes_something_finds_a_producer_for_it():
    produced = {e.type for e in CATALOGUE if e.producers}
    assert all(e.type in produced for e in CATALOGUE)
    types = [e.type for e in CATALOGUE]
    assert len(types) == len(set(types))


def test_problems_reports_a_bad_example_a_gap_and_a_missing_party(monkeypatch):
    broken = EventType(
        "coaching.goal.paused", "A goal was paused.", (), ("goal-agent",),
        {1: {"type": "object", "required": ["goal_id"]}, 3: {"type": "object"}},
        {1: {"goal": "g-1"}})
    monkeypatch.setattr(case, "CATALOGUE", (broken,))
    assert problems() == [
        "coaching.goal.paused: needs at least one producer and one consumer",
        "coaching.goal.paused: versions must run 1..n without gaps",
        "coaching.goal.paused v1 example: 'goal_id' is a required property",
        "coaching.goal.paused v3: no example"]


def test_dates_in_examples_are_checked_as_dates(monkeypatch):
    bad = EventType("coaching.goal.achieved", "x", ("a",), ("b",),
                    {1: {"type": "object", "properties": {"on": {"type": "string",
                                                                 "format": "date"}}}},
                    {1: {"on": "2026-02-30"}})
    monkeypatch.setattr(case, "CATALOGUE", (bad,))
    assert problems() == ["coaching.goal.achieved v1 example: '2026-02-30' is not a 'date'"]


def test_the_json_form_is_plain_data_with_every_version():
    data = json.loads(json.dumps(as_json()))
    entry = data[0]
    assert entry["type"] == "coaching.entry.written" and entry["latest"] == 3
    assert [v["version"] for v in entry["versions"]] == [1, 2, 3]


def load_hook():
    """The build's catalogue renderer (sitebuild/catalogue.py)."""
    from sitebuild import catalogue

    return catalogue


def test_the_build_hook_renders_every_type_version_and_anchor_from_the_module():
    hook = load_hook()
    page = hook.expand("# Catalogue\n\n<!-- catalogue: event_design -->\n")
    for event in CATALOGUE:
        anchor = event.type.replace(".", "-").replace("_", "-")
        assert f"](#{anchor})" in page and f"{{#{anchor}}}" in page
        for version in event.schemas:
            assert f'=== "v{version}' in page
    assert '=== "v3 (latest)"' in page
    blocks = [json.loads(b.split("```")[0]) for b in page.split("```json\n")[1:]]
    entry = CATALOGUE[0]
    assert blocks[:6] == [entry.schemas[3], entry.examples[3], entry.schemas[2],
                          entry.examples[2], entry.schemas[1], entry.examples[1]]


def test_the_build_hook_renders_an_asyncapi_document_and_refuses_an_unknown_application():
    hook = load_hook()
    page = hook.expand("<!-- asyncapi: journal -->\n")
    assert page.startswith('```yaml title="asyncapi-journal.yaml"\nasyncapi: 3.0.0\n')
    assert "send_coachingEntryWritten:" in page
    with pytest.raises(Exception, match="'billing' neither sends nor receives"):
        hook.expand("<!-- asyncapi: billing -->\n")
    assert hook.expand("no directives") == "no directives"


def test_the_build_hook_breaks_the_build_when_the_catalogue_has_problems(monkeypatch):
    hook = load_hook()
    real = hook._load

    def broken(stem):
        module = real(stem)
        module.problems = lambda: ["coaching.goal.set v1 example: boom"]
        return module

    monkeypatch.setattr(hook, "_load", broken)
    with pytest.raises(Exception, match="the case study has problems:\ncoaching.goal.set v1"):
        hook.expand("<!-- catalogue: event_design -->")


def test_the_demo_lists_every_type_and_checks_every_example(capsys):
    main()
    out = capsys.readouterr().out
    assert all(e.type in out for e in CATALOGUE)
    assert out.rstrip().endswith("8 examples checked against their schemas: all valid")
