"""The Event Design chapter's event catalogue, generated at build time.

Directives (HTML comments), rendered by the ``sitebuild.pages`` extension:

* ``<!-- catalogue: event_design -->`` renders every event type of
  ``snippets/event_design/event_catalogue_case_study.py``: a summary table,
  then per type its parties and, per version, its JSON Schema and example.
* ``<!-- asyncapi: APPLICATION -->`` renders the AsyncAPI 3.0 document that
  ``snippets/event_design/event_catalogue_asyncapi.py`` generates for one
  application of that catalogue, as YAML (indent the comment to nest it,
  e.g. in a collapsed ``??? example`` block).

Both read the modules on every build, so the page cannot drift from the
schemas; a catalogue with an invalid example breaks the build.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from types import ModuleType

import yaml

from sitebuild.facts import SNIPPETS

CHAPTER = SNIPPETS / "event_design"


class CatalogueError(ValueError):
    """The catalogue cannot be rendered: the message says why."""

CATALOGUE = re.compile(r"^<!-- catalogue: event_design -->[ \t]*$", re.MULTILINE)
ASYNCAPI = re.compile(r"^(?P<indent>[ \t]*)<!-- asyncapi: (?P<application>[\w-]+) -->[ \t]*$",
                      re.MULTILINE)


def _load(stem: str) -> ModuleType:
    """Import a snippet module from its file, fresh on every build."""
    path = CHAPTER / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"_edd_catalogue_{stem}", path)
    if spec is None or spec.loader is None:
        raise CatalogueError(f"catalogue: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _anchor(event_type: str) -> str:
    return event_type.replace(".", "-").replace("_", "-")


def _fence(language: str, text: str, indent: str) -> list[str]:
    return [f"{indent}```{language}", *(indent + line for line in text.splitlines()),
            f"{indent}```", ""]


def _compact(value: object, indent: str = "", used: int = 0) -> str:
    """JSON with whatever fits in 78 columns on one line, so a schema reads at a glance."""
    flat = json.dumps(value)
    if used + len(flat) <= 78 or not isinstance(value, dict | list):
        return flat
    inner = indent + "  "
    if isinstance(value, list):
        items = [inner + _compact(v, inner, len(inner)) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    items = [f"{inner}{json.dumps(k)}: " + _compact(v, inner, len(inner) + len(json.dumps(k)) + 3)
             for k, v in value.items()]
    return "{\n" + ",\n".join(items) + f"\n{indent}}}"


def catalogue_markdown() -> str:
    """The catalogue section of the page, from the case study's schemas."""
    case = _load("event_catalogue_case_study")
    if found := case.problems():
        raise CatalogueError("catalogue: the case study has problems:\n" + "\n".join(found))
    events = case.as_json()
    lines = ["| Event type | Latest | Producers → consumers |", "|---|---:|---|"]
    lines += [f"| [`{e['type']}`](#{_anchor(e['type'])}) | v{e['latest']} | "
              f"{', '.join(e['producers'])} → {', '.join(e['consumers'])} |" for e in events]
    for event in events:
        lines += ["", f"### `{event['type']}` {{#{_anchor(event['type'])}}}", "",
                  event["summary"], "",
                  f"Produced by **{', '.join(event['producers'])}**; consumed by "
                  f"**{', '.join(event['consumers'])}**. Versions: "
                  + ", ".join(f"v{v['version']}" for v in event["versions"]) + ".", ""]
        for entry in reversed(event["versions"]):
            label = f"v{entry['version']}" + (" (latest)" if entry["version"] == event["latest"]
                                              else "")
            lines += [f'=== "{label}"', "", "    JSON Schema:", ""]
            lines += _fence("json", _compact(entry["schema"]), "    ")
            lines += ["    Example data:", ""]
            lines += _fence("json", _compact(entry["example"]), "    ")
    return "\n".join(lines)


def asyncapi_markdown(match: re.Match[str]) -> str:
    """The AsyncAPI document of one application, as a YAML block."""
    case, asyncapi = _load("event_catalogue_case_study"), _load("event_catalogue_asyncapi")
    try:
        spec = asyncapi.document(case.as_json(), match["application"])
    except ValueError as error:
        raise CatalogueError(f"asyncapi: {error}") from None
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)
    title = f'yaml title="asyncapi-{match["application"]}.yaml"'
    return "\n".join(_fence(title, text, match["indent"])).rstrip("\n")


def expand(markdown: str) -> str:
    """Expand the catalogue and AsyncAPI directives of a page."""
    if CATALOGUE.search(markdown):
        markdown = CATALOGUE.sub(lambda _: catalogue_markdown(), markdown)
    return ASYNCAPI.sub(asyncapi_markdown, markdown)
