"""The adapter at the top of docs/assets/javascripts/site.js: every name the script
shares with Material for MkDocs (classes, attributes, component and toggle names,
storage and settings keys, the search worker's messages), checked against the
installed theme, so that a theme upgrade that renames one fails here instead of
silently breaking the site. No browser: the adapter is read out of the script."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE_JS = ROOT / "docs" / "assets" / "javascripts" / "site.js"
MAIN_HTML = ROOT / "overrides" / "main.html"


# --- Reading the adapter --------------------------------------------------------------


class AdapterError(ValueError):
    """The adapter's object literal holds something this reader does not accept."""


START = re.compile(r"^[ \t]*const MD = (?=Object\.freeze\()", re.MULTILINE)
TOKEN = re.compile(r"""
    (?P<space>(?:\s+|//[^\n]*)+)
  | (?P<freeze>Object\.freeze\()
  | (?P<open>\{) | (?P<close>\}) | (?P<paren>\)) | (?P<comma>,) | (?P<end>;)
  | (?P<key>[A-Za-z_$][\w$]*)[ \t]*:
  | (?P<string>"[^"\\\n]*")
  | (?P<number>0|[1-9][0-9]*)(?![\w.])
""", re.VERBOSE)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _next(text: str, pos: int) -> tuple[str, str, int]:
    """The token at pos after any space and comments: (kind, text, position after)."""
    match = TOKEN.match(text, pos)
    if match and match.lastgroup == "space":
        pos = match.end()
        match = TOKEN.match(text, pos)
    if pos >= len(text):
        raise AdapterError("the adapter is not closed: the script ends inside it")
    if not match:
        snippet = text[pos:pos + 40].split("\n")[0]
        raise AdapterError(f"unparseable entry at line {_line(text, pos)}: {snippet!r}")
    return match.lastgroup, match.group(match.lastgroup), match.end()


def _expect(text: str, pos: int, kind: str) -> int:
    got, token, after = _next(text, pos)
    if got != kind:
        raise AdapterError(f"line {_line(text, pos)}: expected {kind}, found {token!r}")
    return after


def _value(text: str, pos: int) -> tuple[object, int]:
    kind, token, after = _next(text, pos)
    if kind == "string":
        return token[1:-1], after
    if kind == "number":
        return int(token), after
    if kind == "freeze":
        value, after = _object(text, after)
        return value, _expect(text, after, "paren")
    if kind == "open":
        raise AdapterError(f"line {_line(text, pos)}: an object not frozen (wrap it in Object.freeze)")
    raise AdapterError(f"unparseable entry at line {_line(text, pos)}: {token!r}")


def _object(text: str, pos: int) -> tuple[dict, int]:
    pos = _expect(text, pos, "open")
    entries: dict = {}
    while True:
        kind, token, after = _next(text, pos)
        if kind == "close":
            return entries, after
        if kind != "key":
            raise AdapterError(f"unparseable entry at line {_line(text, pos)}: {token!r}")
        name = token.rstrip(": \t")
        if name in entries:
            raise AdapterError(f"line {_line(text, pos)}: {name} twice")
        entries[name], pos = _value(text, after)
        kind, token, after = _next(text, pos)
        if kind == "close":
            return entries, after
        if kind != "comma":
            raise AdapterError(f"line {_line(text, pos)}: expected , or }}, found {token!r}")
        pos = after


def read_adapter(source: str) -> tuple[dict, tuple[int, int]]:
    """The adapter object of a script, and the span of its statement in the source."""
    starts = list(START.finditer(source))
    if len(starts) != 1:
        raise AdapterError(f"expected one `const MD = Object.freeze({{...}});`, found {len(starts)}")
    value, end = _value(source, starts[0].end())
    if not isinstance(value, dict):
        raise AdapterError("MD is not an object")
    return value, (starts[0].start(), _expect(source, end, "end"))


# --- Reading the rest of the script -----------------------------------------------------


def _string_end(code: str, i: int) -> int:
    quote, j = code[i], i + 1
    while code[j] != quote:
        if code[j] == "\n":
            raise AdapterError(f"unterminated string at line {_line(code, i)}")
        j += 2 if code[j] == "\\" else 1
    return j + 1


def _template_end(code: str, i: int, found: list[str]) -> int:
    j = i + 1
    while code[j] != "`":
        if code[j] == "\\":
            j += 2
        elif code.startswith("${", j):
            j = _scan(code, j + 2, found, until_brace=True)
        else:
            j += 1
    return j + 1


def _after_comment(code: str, i: int) -> int | None:
    """Where the comment starting at i ends, or None if none starts there."""
    if code.startswith("//", i):
        return code.find("\n", i) if "\n" in code[i:] else len(code)
    if code.startswith("/*", i):
        return code.index("*/", i) + 2
    return None


def _scan(code: str, i: int, found: list[str], until_brace: bool = False) -> int:
    """Collect string and template literals from i (comments skipped); return the end."""
    depth = 0
    while i < len(code):
        c = code[i]
        if (after := _after_comment(code, i)) is not None:
            i = after
        elif c in "\"'":
            end = _string_end(code, i)
            found.append(code[i + 1:end - 1])
            i = end
        elif c == "`":
            end = _template_end(code, i, found)
            found.append(code[i + 1:end - 1])
            i = end
        else:
            if until_brace and c == "{":
                depth += 1
            elif until_brace and c == "}":
                if depth == 0:
                    return i + 1
                depth -= 1
            i += 1
    if until_brace:
        raise AdapterError("unterminated ${...} in a template literal")
    return i


def literals(code: str) -> list[str]:
    """Every string and template literal of a script (those inside ${...} too)."""
    found: list[str] = []
    _scan(code, 0, found)
    return found


def code_only(code: str) -> str:
    """The script without its comments and strings (each becomes ""); template
    literals are kept whole, for the code inside their ${...}."""
    out, i = [], 0
    while i < len(code):
        c = code[i]
        if (after := _after_comment(code, i)) is not None:
            i = after
        elif c in "\"'":
            i = _string_end(code, i)
            out.append('""')
        elif c == "`":
            end = _template_end(code, i, [])
            out.append(code[i:end])
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


MATERIAL_NAME = re.compile(r"(?<![\w-])(?:md-|__md|data-md-)")


def names_outside(rest: str, adapter: dict) -> list[str]:
    """Material's names in a script outside its adapter: literals that hold one, or
    that equal an adapter value, and __md identifiers."""
    values = {v for group in adapter.values() if isinstance(group, dict)
              for v in group.values() if isinstance(v, str)}
    values |= {v for v in adapter.values() if isinstance(v, str)}
    found = [f"literal {text!r}" for text in literals(rest)
             if MATERIAL_NAME.search(text) or text in values]
    found += [f"identifier {name}" for name in re.findall(r"(?<![\w$])__md\w*", code_only(rest))]
    return found


# --- The installed theme ------------------------------------------------------------------

MATERIAL = Path(importlib.util.find_spec("material").origin).parent / "templates"


def _one(pattern: str) -> str:
    files = sorted(MATERIAL.glob(pattern))
    assert len(files) == 1, f"expected one {pattern} in {MATERIAL}, found {files}"
    return files[0].read_text(encoding="utf-8")


CSS = "\n".join(p.read_text(encoding="utf-8") for p in sorted(MATERIAL.glob("assets/stylesheets/*.css")))
HTML = "\n".join(p.read_text(encoding="utf-8") for p in sorted(MATERIAL.rglob("*.html")))
BUNDLE = _one("assets/javascripts/bundle.*.min.js")
WORKER = _one("assets/javascripts/workers/search.*.min.js")
PALETTE_JS = (MATERIAL / "partials" / "javascripts" / "palette.html").read_text(encoding="utf-8")
CONFIG = re.search(r'<script id="__config".*?</script>', (MATERIAL / "base.html").read_text(encoding="utf-8"),
                   re.DOTALL).group(0)


def _class_found(name: str) -> bool:
    token = re.escape(name) + r"(?![\w-])"
    return bool(re.search(r"\." + token, CSS) or re.search(r'class="[^"]*(?<![\w-])' + token, HTML))


def _attribute_found(name: str) -> bool:
    token = re.escape(name)
    return bool(re.search(r"\[" + token + r"[\]=]", CSS) or re.search(r"(?<![\w-])" + token + r"(?=[=\s>])", HTML)
                or f'"{name}"' in BUNDLE)


def _field_found(name: str) -> bool:
    token = re.escape(name)
    return bool(re.search(r"(?:[.{,]" + token + r"(?![\w$])|(?<![\w$])" + token + ":)", WORKER)
                or f'"{name}"' in WORKER)


PALETTE_NEEDLES = {  # where the theme reads each palette value
    "systemMedia": lambda v: (PALETTE_JS, f'"{v}"'),
    "lightMedia": lambda v: (PALETTE_JS, f"[data-md-color-media='{v}']"),
    "darkMedia": lambda v: (PALETTE_JS, f"[data-md-color-media='{v}']"),
    "darkScheme": lambda v: (CSS, f"[data-md-color-scheme={v}]"),
    "index": lambda v: (BUNDLE, f"{{{v}:"),
    "color": lambda v: (PALETTE_JS, f"palette.{v}"),
}


def check_entry(group: str, key: str, value: object) -> str | None:
    """Why an adapter entry does not match the installed theme, or None if it does."""
    where = f"MD.{group}.{key} = {value!r}"
    if group == "message":
        return None if isinstance(value, int) else f"{where}: a message type is a number"
    if not isinstance(value, str):
        return f"{where}: expected a string"
    if group == "cls":
        found = _class_found(value)
    elif group in ("component", "toggle"):
        found = f'data-md-{group}="{value}"' in HTML
    elif group == "id":
        found = f'id="{value}"' in HTML
    elif group == "attr":
        found = _attribute_found(value)
    elif group == "color":
        found = (value == f"data-md-color-{key}" and '"data-md-color-"+key' in PALETTE_JS
                 and f"palette.color.{key}" in PALETTE_JS and f"{value}=" in HTML)
    elif group == "palette":
        if key not in PALETTE_NEEDLES:
            return f"{where}: no check for this entry (add one to PALETTE_NEEDLES)"
        text, needle = PALETTE_NEEDLES[key](value)
        found = needle in text
    elif group == "storage":
        found = (f"{value}=" in HTML) if key in ("get", "set") else (f'__md_get("{value}")' in HTML)
    elif group == "config":
        found = f'"{value}":' in CONFIG
    elif group == "feature":
        found = f'"{value}"' in BUNDLE
    elif group == "text":
        found = (f'.replace("{value}",' in BUNDLE) if key == "count" else (f'"{value}":' in CONFIG)
    elif group == "field":
        found = _field_found(value)
    elif group == "search":
        found = (f'"{value}"' in BUNDLE) if key == "index" else (f'.get("{value}")' in BUNDLE)
    elif group == "media":
        found = f'"{value}"' in BUNDLE and value.replace(": ", ":") in CSS
    else:
        return f"{where}: no check for the group {group!r} (add one to check_entry)"
    return None if found else f"{where}: not found in Material {INSTALLED}"


def worker_protocol() -> dict[int, str]:
    """The search worker's message handler: each message type it takes, and the
    code that answers it."""
    handler = re.search(r"switch\(\w+\.type\)\{(case \d+:.*?)default:", WORKER, re.DOTALL)
    assert handler, "the search worker's message handler (switch on the message type) is not found"
    parts = re.split(r"case (\d+):", handler.group(1))
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


INSTALLED = importlib.metadata.version("mkdocs-material")
SOURCE = SITE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def adapter() -> dict:
    return read_adapter(SOURCE)[0]


@pytest.fixture(scope="module")
def rest() -> str:
    start, end = read_adapter(SOURCE)[1]
    return SOURCE[:start] + SOURCE[end:]


# --- The tests ----------------------------------------------------------------------------


def test_the_adapter_is_one_frozen_object_of_names():
    adapter = read_adapter(SOURCE)[0]  # every entry read, or a failure naming the one that is not
    assert sorted(adapter) == ["attr", "cls", "color", "component", "config", "feature", "field", "id",
                               "media", "message", "palette", "search", "storage", "text", "toggle",
                               "version"]
    assert adapter["message"] == {"setup": 0, "ready": 1, "query": 2, "result": 3}


def test_the_adapter_was_written_for_the_installed_material(adapter):
    assert adapter["version"] == INSTALLED, (
        f"site.js's adapter was written for Material {adapter['version']}, and {INSTALLED} is installed: "
        "check every entry of the adapter against the new theme (this file's other tests help), "
        "then set its version to the installed one")


def test_every_entry_of_the_adapter_is_in_the_installed_material(adapter):
    problems = []
    for group, entries in adapter.items():
        if group == "version":
            continue
        if not isinstance(entries, dict):
            problems.append(f"MD.{group}: no check for this entry (add one to this test)")
            continue
        problems += filter(None, (check_entry(group, key, value) for key, value in entries.items()))
    assert problems == [], "\n".join(problems)


def test_the_search_worker_answers_the_adapters_message_types(adapter):
    message = adapter["message"]
    answers = worker_protocol()
    assert sorted(answers) == sorted([message["setup"], message["query"]]), answers
    assert f"{{type:{message['ready']}}}" in answers[message["setup"]]  # set up: ready
    assert f"{{type:{message['result']},data:" in answers[message["query"]]  # a query: its results


def test_no_material_name_is_used_outside_the_adapter(adapter, rest):
    assert names_outside(rest, adapter) == [], "Material's names belong in the adapter (MD) only"


def test_every_reference_to_the_adapter_names_an_entry_and_every_entry_is_used(adapter, rest):
    code = code_only(rest)
    aliases = dict(re.findall(r"const (\w+) = MD\.(\w+);", code))
    assert set(aliases.values()) <= set(adapter), aliases
    used: set[tuple[str, str]] = set()
    for group, key in re.findall(r"(?<![\w$.])MD\.(\w+)(?:\.(\w+))?", code):
        used.add((group, key))
    for alias, group in aliases.items():
        used |= {(group, key) for key in re.findall(rf"(?<![\w$.]){alias}\.(\w+)", code)}
    unknown = [f"MD.{g}.{k}" if k else f"MD.{g}" for g, k in sorted(used)
               if g not in adapter or (k and (not isinstance(adapter[g], dict) or k not in adapter[g]))]
    assert unknown == [], "the script names entries the adapter does not have"
    iterated = set(re.findall(r"Object\.(?:entries|values|keys)\(MD\.(\w+)\)", code))
    unused = [f"MD.{g}.{k}" for g, entries in adapter.items() if isinstance(entries, dict)
              for k in entries if (g, k) not in used and g not in iterated]
    unused += [f"MD.{g}" for g, v in adapter.items() if not isinstance(v, dict) and g != "version"
               and (g, "") not in used]
    assert unused == [], "entries of the adapter that the script does not use"


def test_the_names_overrides_main_html_sets_are_materials():
    script = re.search(r"<script>(.*?)</script>", MAIN_HTML.read_text(encoding="utf-8"), re.DOTALL).group(1)
    assert re.findall(r'classList\.replace\("([\w-]+)", "([\w-]+)"\)', script) == [("no-js", "js")]
    assert re.search(r'<html [^>]*class="no-js"', HTML)  # the template's, replaced
    assert ".js " in CSS  # the stylesheets' layout for readers with scripts
    marks = re.findall(r'(?:classList\.add|setAttribute)\("((?:data-)?js-[\w-]+)"', script)
    assert marks == ["js-focus-visible", "data-js-focus-visible"]
    for name in marks:  # as the theme's own script sets them
        assert f'"{name}"' in BUNDLE, name


# --- The reader itself: strict, so that nothing slips past it ------------------------------


@pytest.mark.parametrize(("source", "error"), [
    ('const MD = Object.freeze({ a: "x", b: Object.freeze({ c: 2 }) });', None),
    ('const MD = Object.freeze({ a: "x" });\nconst MD = Object.freeze({});', "found 2"),
    ('const MD = { a: "x" };', "found 0"),
    ('const MD = Object.freeze({ a: { b: "x" } });', "not frozen"),
    ("const MD = Object.freeze({ a: 'x' });", "unparseable entry at line 1: \"'x' });\""),
    ('const MD = Object.freeze({ a: `x` });', "unparseable entry at line 1"),
    ('const MD = Object.freeze({\n  a: "x" + "y" });', "unparseable entry at line 2: '+ \"y\" });'"),
    ('const MD = Object.freeze({ a: "x" "y" });', "line 1: expected , or }, found '\"y\"'"),
    ('const MD = Object.freeze({ a: "x", b: Object.freeze({ c: 2 })', "the adapter is not closed"),
    ('const MD = Object.freeze({ a: "x", a: "y" });', "a twice"),
    ('const MD = Object.freeze({ a: name });', "unparseable entry at line 1: 'name });'"),
    ('const MD = Object.freeze({ a: 1.5 });', "unparseable entry at line 1"),
    ('const MD = Object.freeze({ "a": 1 });', "unparseable entry at line 1"),
    ('const MD = Object.freeze({ a: 1 }), 1;', "expected end, found ','"),
    ('const MD = Object.freeze({ a: 1 }, 2);', "expected paren, found ','"),
])
def test_the_reader_takes_only_strings_numbers_and_frozen_objects(source, error):
    if error is None:
        assert read_adapter(source)[0] == {"a": "x", "b": {"c": 2}}
        return
    with pytest.raises(AdapterError) as raised:
        read_adapter(source)
    assert error in str(raised.value)


def test_the_reader_keeps_comments_out_and_returns_the_statements_span():
    source = 'a();\n  const MD = Object.freeze({\n    // a note: "md-x"\n    a: "b", // why\n  });\nc();'
    value, (start, end) = read_adapter(source)
    assert value == {"a": "b"}
    assert source[:start] + source[end:] == "a();\n\nc();"


def test_the_scan_finds_material_names_in_literals_and_identifiers_but_not_comments():
    adapter = {"cls": {"search": "md-search"}, "toggle": {"search": "search"}, "searchIndex": "i.json"}
    script = """
      // md-comment, "md-in-comment" and 'data-md-in-comment' are comments
      /* "__md_get" */
      $(".md-header"); $('[data-md-toggle=x]'); $(`.md-x ${y ? "data-md-y" : ""}`);
      toggle("search"); fetch("i.json"); x = "it's md-"; z = "amd-x";
      __md_set("k", 1); ok("no"); w = a / b; r = /^Arrow/;
    """
    assert names_outside(script, adapter) == [
        "literal '.md-header'", "literal '[data-md-toggle=x]'", "literal 'data-md-y'",
        'literal \'.md-x ${y ? "data-md-y" : ""}\'', "literal 'search'", "literal 'i.json'",
        "literal \"it's md-\"", "identifier __md_set"]
