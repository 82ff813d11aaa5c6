"""An AsyncAPI 3.0 document for one application of the coaching app, generated from its catalogue.

The input is the catalogue as plain data: a list of event types, each with
its producers, consumers and versions (schema and example). An application
gets one channel per event type it touches, named by the event type, with a
message per version. It sends only the latest version of what it produces
and receives every version of what it consumes, since old versions are still
in flight during a migration. Messages travel as CloudEvents in binary mode,
so the attributes are ``ce-`` headers and the correlation id is one of them.
"""

from __future__ import annotations

import json
from typing import Any


def _camel(event_type: str) -> str:
    words = event_type.replace("_", ".").split(".")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _headers(event_type: str, version: int) -> dict[str, Any]:
    """The CloudEvents binary-mode headers of one event type and version."""
    text = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "properties": {
            "ce-specversion": {"type": "string", "const": "1.0"},
            "ce-id": text, "ce-source": text,
            "ce-type": {"type": "string", "const": event_type},
            "ce-time": {"type": "string", "format": "date-time"},
            "ce-dataschema": {"type": "string",
                              "const": f"urn:coaching:schema:{event_type}:{version}"},
            "ce-correlationid": text, "ce-causationid": text,
        },
        "required": ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time",
                     "ce-dataschema", "ce-correlationid"],
    }


# --8<-- [start:document]
def document(catalogue: list[dict[str, Any]], application: str,
             version: str = "1.0.0") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of what ``application`` sends and receives.

    Raises:
        ValueError: the application neither produces nor consumes any event type.
    """
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event in catalogue:
        sends, receives = application in event["producers"], application in event["consumers"]
        if not (sends or receives):
            continue
        channel = _camel(event["type"])
        ids = {}
        for entry in event["versions"]:
            ids[entry["version"]] = f"{event['type']}.v{entry['version']}"
            messages[ids[entry["version"]]] = {
                "name": event["type"], "title": f"{event['type']} v{entry['version']}",
                "summary": event["summary"], "contentType": "application/json",
                "correlationId": {"location": "$message.header#/ce-correlationid"},
                "headers": _headers(event["type"], entry["version"]),
                "payload": entry["schema"],
                "examples": [{"name": f"v{entry['version']}", "payload": entry["example"]}],
            }
        channels[channel] = {
            "address": event["type"], "title": event["type"], "summary": event["summary"],
            "messages": {ids[v]: {"$ref": f"#/components/messages/{ids[v]}"} for v in ids}}
        refs = [{"$ref": f"#/channels/{channel}/messages/{ids[v]}"} for v in sorted(ids)]
        if sends:
            operations[f"send_{channel}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{application} publishes {event['type']} v{event['latest']}.",
                "messages": [refs[sorted(ids).index(event["latest"])]]}
        if receives:
            operations[f"receive_{channel}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{application} reads every version of {event['type']}.",
                "messages": refs}
    if not channels:
        known = sorted({a for e in catalogue for a in (*e["producers"], *e["consumers"])})
        raise ValueError(f"{application!r} neither sends nor receives any event; "
                         f"applications in the catalogue: {', '.join(known)}")
    return {"asyncapi": "3.0.0",
            "info": {"title": f"Coaching app: {application}", "version": version,
                     "description": f"The events that {application} sends and receives."},
            "defaultContentType": "application/json",
            "channels": channels, "operations": operations, "components": {"messages": messages}}
# --8<-- [end:document]


def main() -> None:
    """The document of a tiny two-event catalogue, for the goal tracker."""
    goal = {"type": "object", "properties": {"goal_id": {"type": "string"}},
            "required": ["goal_id"]}
    catalogue = [
        {"type": "coaching.goal.set", "summary": "A person set a new goal.",
         "producers": ["goal-service"], "consumers": ["goal-tracker"], "latest": 1,
         "versions": [{"version": 1, "schema": goal, "example": {"goal_id": "g-1"}}]},
        {"type": "coaching.goal.achieved", "summary": "A goal's target was met.",
         "producers": ["goal-tracker"], "consumers": ["goal-agent"], "latest": 1,
         "versions": [{"version": 1, "schema": goal, "example": {"goal_id": "g-1"}}]},
    ]
    spec = document(catalogue, "goal-tracker")
    for name, operation in spec["operations"].items():
        print(f"{name}: {operation['action']} on {operation['channel']['$ref']}")
    print(json.dumps(spec["channels"]["coachingGoalSet"], indent=2))
    try:
        document(catalogue, "billing")
    except ValueError as refused:
        print(f"refused: {refused}")


if __name__ == "__main__":
    main()
