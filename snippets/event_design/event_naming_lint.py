"""A lint for event names: ``<domain>.<entity>.<what happened>``, in the past tense.

Each rule has a short id and a reason, and the lint reports every rule that a
name breaks, so a pull request that adds ``coaching.goal.update_goal_v2`` is
told all of it at once. The glossary of entities keeps names in the domain's
own language rather than in the database's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
IRREGULAR = {"set", "written", "read", "sent", "begun", "given", "taken", "made", "done",
             "won", "lost", "kept", "met", "held", "chosen", "forgotten", "spoken", "shared",
             "felt", "slept", "left", "run", "put", "quit", "reset", "split", "undone"}
IMPERATIVE = {"add", "create", "update", "delete", "set", "send", "write", "do", "make",
              "process", "handle", "run", "start", "stop", "get", "fetch", "save", "remove",
              "change", "notify", "trigger", "compute", "sync", "schedule"}
VAGUE = {"updated", "changed", "modified", "processed", "handled", "triggered", "done",
         "saved", "synced", "executed", "created", "inserted", "deleted", "upserted"}
TECHNICAL = {"db", "table", "row", "record", "crud", "kafka", "queue", "topic", "http",
             "api", "json", "dto", "event", "msg", "message", "payload", "data", "entity"}
VERSION = re.compile(r"(^|_)v\d+$")
# Words that end in -ed without stating a fact, and prefixes an irregular participle
# keeps (rewritten, undone, overpaid is regular anyway).
NOT_PARTICIPLES = {"need", "feed", "seed", "speed", "bleed", "breed", "proceed", "succeed",
                   "exceed", "embed", "shed", "deed", "heed", "weed", "reed"}
PREFIXES = ("re", "un", "over", "under", "pre", "mis", "out")


def participle(word: str) -> bool:
    """Whether ``word`` reads as a past participle: a regular one (-ed), an irregular
    one, or an irregular one behind a prefix (``rewritten``)."""
    if word in IRREGULAR or any(word.startswith(p) and word[len(p):] in IRREGULAR
                                for p in PREFIXES):
        return True
    return word.endswith("ed") and word not in NOT_PARTICIPLES


# --8<-- [start:rules]
@dataclass(frozen=True)
class Rule:
    """One naming rule: an id for the report and the reason it exists."""

    id: str
    reason: str


FORMAT = Rule("format", "three or more dotted lowercase segments: domain.entity.what_happened")
DOMAIN = Rule("domain", "the first segment names a known domain (bounded context)")
ENTITY = Rule("entity", "the entity is a word of the domain's glossary")
PAST = Rule("past-tense", "the last segment states a fact: a past participle (set, written, "
                          "achieved)")
COMMAND = Rule("not-a-command", "an imperative (send_reminder) asks for work: that is a command")
PRECISE = Rule("precise", "CRUD and vague verbs (created, updated, processed) describe storage; "
                          "name the business change")
PLUMBING = Rule("no-plumbing", "no transport or storage words (db, row, topic, event, dto)")
UNVERSIONED = Rule("no-version", "the version belongs in the envelope (dataschema), not the name")
# --8<-- [end:rules]


# --8<-- [start:lint]
def lint(name: str, glossary: dict[str, set[str]]) -> list[Rule]:
    """The rules that ``name`` breaks (empty when it is a good name).

    Args:
        name: an event type such as ``coaching.goal.set``.
        glossary: the entities of each domain, e.g. ``{"coaching": {"goal", "entry"}}``.
    """
    segments = name.split(".") if isinstance(name, str) else []
    if len(segments) < 3 or not all(SEGMENT.fullmatch(s) for s in segments):
        return [FORMAT]
    domain, entity, action = segments[0], segments[-2], segments[-1]
    words = action.split("_")
    broken = []
    if domain not in glossary:
        broken.append(DOMAIN)
    elif entity not in glossary[domain]:
        broken.append(ENTITY)
    if words[0] in IMPERATIVE and not (words[0] in IRREGULAR and len(words) == 1):
        broken.append(COMMAND)
    last = next((w for w in reversed(words) if not VERSION.fullmatch(w)), "")
    if COMMAND not in broken and not participle(last):
        broken.append(PAST)
    if any(w in VAGUE for w in words):
        broken.append(PRECISE)
    if any(w in TECHNICAL for s in segments for w in s.split("_")):
        broken.append(PLUMBING)
    if VERSION.search(action) or any(VERSION.fullmatch(s) for s in segments):
        broken.append(UNVERSIONED)
    return broken
# --8<-- [end:lint]


GLOSSARY = {"coaching": {"entry", "goal", "reflection", "agent", "session", "reminder",
                         "feedback", "mood"}}
# --8<-- [start:catalogue]
RENAMES = [  # (a name seen in a pull request, the name it became)
    ("coaching.goal.set_goal", "coaching.goal.set"),
    ("coaching.reminder.send_reminder", "coaching.reminder.sent"),
    ("coaching.reflection.ready", "coaching.reflection.composed"),
    ("coaching.goal.updated", "coaching.goal.sessions_per_week_raised"),
    ("coaching.entry.row_inserted", "coaching.entry.written"),
    ("coaching.entry.written_v2", "coaching.entry.written"),
    ("coaching.goal_record.changed", "coaching.goal.paused"),
    ("journal.entry.created", "coaching.entry.written"),
    ("GoalSet", "coaching.goal.set"),
    ("coaching.goal", "coaching.goal.achieved"),
]
# --8<-- [end:catalogue]


def main() -> None:
    """Lint names from real pull requests and the names they became."""
    print(f"{'name in the pull request':33} {'rules it breaks':36} renamed to")
    for bad, good in RENAMES:
        broken = ", ".join(r.id for r in lint(bad, GLOSSARY))
        verdict = ", ".join(r.id for r in lint(good, GLOSSARY)) or "ok"
        print(f"{bad:33} {broken:36} {good} ({verdict})")
    print("\nrules:")
    for rule in (FORMAT, DOMAIN, ENTITY, PAST, COMMAND, PRECISE, PLUMBING, UNVERSIONED):
        print(f"  {rule.id:14} {rule.reason}")


if __name__ == "__main__":
    main()
