"""Every application's AsyncAPI document is valid against the official AsyncAPI 3.0.0 JSON
Schema (vendored from npm @asyncapi/specs, checked offline), and says what the catalogue says."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from snippets.event_design.event_catalogue_asyncapi import document, main
from snippets.event_design.event_catalogue_case_study import CATALOGUE, as_json

VENDORED = Path(__file__).parent / "asyncapi"
CATALOG = as_json()
APPLICATIONS = sorted({a for e in CATALOG for a in (*e["producers"], *e["consumers"])})


def offline(uri: str):
    raise LookupError(f"{uri} is not in the vendored AsyncAPI schema; no network at test time")


@pytest.fixture(scope="module")
def asyncapi() -> Draft7Validator:
    schema = json.loads((VENDORED / "3.0.0.json").read_text())
    root = Resource.from_contents(schema, default_specification=DRAFT7)
    registry = Registry(retrieve=offline).with_resource(schema["$id"], root).crawl()
    return Draft7Validator(schema, registry=registry)


def test_the_vendored_schema_is_the_official_3_0_0_one_with_its_licence():
    schema = json.loads((VENDORED / "3.0.0.json").read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    assert "AsyncAPI Initiative" in (VENDORED / "NOTICE").read_text()


@pytest.mark.parametrize("application", APPLICATIONS)
def test_every_applications_document_is_valid_asyncapi_3(asyncapi, application):
    errors = [e.message for e in asyncapi.iter_errors(document(CATALOG, application))]
    assert errors == []


@pytest.mark.parametrize(("break_it", "why"), [
    (lambda d: d["operations"]["send_coachingEntryWritten"].update(action="publish"),
     "AsyncAPI 2 verb"),
    (lambda d: d["info"].pop("version"), "info without version"),
    (lambda d: d["channels"]["coachingEntryWritten"].update(address=5), "address not a string"),
    (lambda d: d.update(asyncapi="2.6.0"), "wrong spec version"),
    (lambda d: d["components"]["messages"]["coaching.entry.written.v3"].update(
        contentType=["application/json"]), "content type not a string"),
])
def test_the_validator_does_catch_broken_documents(asyncapi, break_it, why):
    broken = copy.deepcopy(document(CATALOG, "journal"))
    break_it(broken)
    assert not asyncapi.is_valid(broken), why


def resolve(spec: dict, ref: str):
    node = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("application", APPLICATIONS)
def test_every_reference_in_a_document_resolves(application):
    spec = document(CATALOG, application)
    refs = []

    def walk(node):
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert resolve(spec, ref) is not None


def test_the_journal_sends_the_latest_entry_and_receives_feedback_and_agents():
    spec = document(CATALOG, "journal")
    send = spec["operations"]["send_coachingEntryWritten"]
    assert send["action"] == "send"
    assert send["messages"] == [{"$ref": "#/channels/coachingEntryWritten/messages/"
                                         "coaching.entry.written.v3"}]
    assert {n for n, o in spec["operations"].items() if o["action"] == "receive"} == {
        "receive_coachingFeedbackGiven", "receive_coachingAgentRegistered"}
    assert spec["channels"]["coachingEntryWritten"]["address"] == "coaching.entry.written"


def test_a_consumer_receives_every_version_still_in_flight():
    spec = document(CATALOG, "mood-agent")
    receive = spec["operations"]["receive_coachingEntryWritten"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in receive["messages"]] == [
        "coaching.entry.written.v1", "coaching.entry.written.v2", "coaching.entry.written.v3"]


def test_payloads_examples_and_headers_come_from_the_catalogue():
    spec = document(CATALOG, "mood-agent")
    for event in CATALOGUE:
        for version, schema in event.schemas.items():
            message = spec["components"]["messages"].get(f"{event.type}.v{version}")
            if message is None:
                continue
            assert message["payload"] == schema
            assert message["examples"][0]["payload"] == event.examples[version]
            assert message["headers"]["properties"]["ce-type"]["const"] == event.type
            assert message["correlationId"]["location"] == "$message.header#/ce-correlationid"


def test_an_application_outside_the_catalogue_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="'billing' neither sends nor receives any event; "
                                         "applications in the catalogue: agent-runtime, "):
        document(CATALOG, "billing")


def test_the_demo_prints_the_goal_trackers_operations(capsys):
    main()
    out = capsys.readouterr().out
    assert "receive_coachingGoalSet: receive on #/channels/coachingGoalSet" in out
    assert "send_coachingGoalAchieved: send on #/channels/coachingGoalAchieved" in out
    assert "refused: 'billing' neither sends nor receives any event" in out
