"""A translator as an anti-corruption layer: legacy diary events in, domain events out.

The coaching app imports entries from DiaryPro, an older product with its
own vocabulary: numeric user ids, epoch milliseconds, mood codes from 0 to 4,
tags in one semicolon-separated string. The anti-corruption layer is the one
place that knows that vocabulary. It maps each legacy event to the domain's
``EntryWritten`` or ``EntryDeleted``, refuses what it cannot map with an
error that names the field, and says explicitly which legacy event types the
domain does not care about, so that a new legacy type is noticed instead of
dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MOOD_CODES = {0: "low", 1: "low", 2: "ok", 3: "good", 4: "good"}
NOT_OUR_BUSINESS = frozenset({"USER_LOGIN", "THEME_CHANGED", "SYNC_HEARTBEAT"})
MAX_TEXT = 20_000


@dataclass(frozen=True)
class EntryWritten:
    """The domain's event: a journal entry, in the coaching app's own words."""

    entry_id: str
    user_id: str
    written_at: datetime
    text: str
    mood: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class EntryDeleted:
    """The domain's event: the writer deleted an entry."""

    entry_id: str
    user_id: str


class TranslationError(ValueError):
    """A legacy event the layer refuses; the message names the event and the field."""


# --8<-- [start:translate]
class LegacyDiaryTranslator:
    """Maps DiaryPro events to domain events.

    Args:
        users: DiaryPro user number -> coaching user id; the layer owns this map.
    """

    def __init__(self, users: Mapping[int, str]) -> None:
        self._users = dict(users)

    def translate(self, legacy: Mapping[str, Any]) -> EntryWritten | EntryDeleted | None:
        """One legacy event in; a domain event, or None for types the domain ignores."""
        kind = legacy.get("EvtType")
        if isinstance(kind, str) and kind in NOT_OUR_BUSINESS:
            return None
        event_id = self._field(legacy, "EvtId", int, "?")
        entry_id, user_id = f"diarypro-{event_id}", self._user(legacy, event_id)
        if kind == "DIARY_ENTRY_DELETED":
            return EntryDeleted(entry_id, user_id)
        if kind != "DIARY_ENTRY_SAVED":
            raise TranslationError(f"legacy event {event_id}: unknown EvtType {kind!r}")
        millis = self._field(legacy, "ts", int, event_id)
        try:
            written_at = datetime.fromtimestamp(millis / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TranslationError(f"legacy event {event_id}: 'ts' {millis} is not a "
                                   "plausible time in epoch milliseconds") from None
        text = self._field(legacy, "txt", str, event_id)
        if len(text) > MAX_TEXT:
            raise TranslationError(f"legacy event {event_id}: 'txt' is {len(text)} characters,"
                                   f" more than {MAX_TEXT}")
        code = self._field(legacy, "moodCode", int, event_id)
        if code != -1 and code not in MOOD_CODES:
            raise TranslationError(f"legacy event {event_id}: 'moodCode' {code} is not -1..4")
        tags = self._field(legacy, "tagList", str, event_id)
        unique = dict.fromkeys(t.strip().lower() for t in tags.split(";") if t.strip())
        return EntryWritten(entry_id, user_id, written_at, text, MOOD_CODES.get(code),
                            tuple(unique))
# --8<-- [end:translate]

    def _user(self, legacy: Mapping[str, Any], event_id: object) -> str:
        number = self._field(legacy, "uid", int, event_id)
        if number not in self._users:
            raise TranslationError(f"legacy event {event_id}: unknown DiaryPro user {number}")
        return self._users[number]

    @staticmethod
    def _field(legacy: Mapping[str, Any], name: str, kind: type, event_id: object) -> Any:
        value = legacy.get(name)
        if type(value) is not kind:  # bool is not int, "42" is not 42
            raise TranslationError(f"legacy event {event_id}: field {name!r} must be "
                                   f"{kind.__name__}, not {value!r}")
        return value


def main() -> None:
    """Five DiaryPro events through the layer."""
    layer = LegacyDiaryTranslator({4711: "user-ana"})
    legacy_events = [
        {"EvtType": "DIARY_ENTRY_SAVED", "EvtId": 88123, "uid": 4711, "ts": 1718035200000,
         "txt": "Ran 5 km before work.", "moodCode": 3, "tagList": "Run; sleep;;run"},
        {"EvtType": "USER_LOGIN", "EvtId": 88124, "uid": 4711},
        {"EvtType": "DIARY_ENTRY_DELETED", "EvtId": 88125, "uid": 4711},
        {"EvtType": "DIARY_ENTRY_SAVED", "EvtId": 88126, "uid": 4711, "ts": "2024-06-10",
         "txt": "?", "moodCode": 2, "tagList": ""},
        {"EvtType": "DIARY_REMINDER_SET", "EvtId": 88127, "uid": 4711},
    ]
    for legacy in legacy_events:
        try:
            event = layer.translate(legacy)
            print(f"{legacy['EvtType']:<20} -> {event or 'ignored: the domain does not care'}")
        except TranslationError as error:
            print(f"{legacy['EvtType']:<20} -> refused: {error}")


if __name__ == "__main__":
    main()
