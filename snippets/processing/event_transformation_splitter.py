"""A splitter: one imported diary batch in, one event per entry out, the same every time.

A user imports a week of a paper diary, or an export from another app, as a
single ``DiaryImported`` message. Consumers want one ``EntryWritten`` per
entry. The splitter gives every part an id derived from the batch id and its
index (``imp-7/3``), so splitting a redelivered batch produces the same ids
and the consumers' inboxes drop the repeats. Each part carries the batch id
as its correlation id and its place as ``(index, total)``, enough for an
aggregator to tell when the whole batch has been handled.

One bad entry does not sink the batch: it becomes a rejection with its
index and reason, and its siblings go on. A batch that is too large to be
plausible is refused whole before anything is emitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PARTS = 1_000


@dataclass(frozen=True)
class EntryWritten:
    """One entry of the batch, as its own event."""

    message_id: str
    correlation_id: str
    part: tuple[int, int]
    user_id: str
    day: str
    text: str


@dataclass(frozen=True)
class Rejected:
    """An entry of the batch that could not become an event, and why."""

    batch_id: str
    index: int
    reason: str


class BatchError(ValueError):
    """The batch as a whole is unusable; nothing was emitted."""


# --8<-- [start:split]
def split(batch: Mapping[str, Any]) -> tuple[list[EntryWritten], list[Rejected]]:
    """Split a ``DiaryImported`` batch; deterministic, so redelivery repeats the same ids."""
    batch_id, user_id, entries = batch.get("batch_id"), batch.get("user_id"), batch.get("entries")
    if not isinstance(batch_id, str) or not batch_id or "/" in batch_id:
        raise BatchError(f"batch_id must be a non-empty string without '/', not {batch_id!r}")
    if not isinstance(user_id, str) or not user_id:
        raise BatchError(f"batch {batch_id}: user_id must be a non-empty string")
    if not isinstance(entries, list):
        raise BatchError(f"batch {batch_id}: entries must be a list")
    if len(entries) > MAX_PARTS:
        raise BatchError(f"batch {batch_id}: {len(entries)} entries, more than {MAX_PARTS}")
    parts, rejected, total = [], [], len(entries)
    for index, item in enumerate(entries, 1):
        if not isinstance(item, dict):
            rejected.append(Rejected(batch_id, index, f"not an object: {type(item).__name__}"))
            continue
        day, text = item.get("day"), item.get("text")
        if not isinstance(day, str) or len(day) != 10 or not isinstance(text, str):
            rejected.append(Rejected(batch_id, index, "needs 'day' (YYYY-MM-DD) and 'text'"))
            continue
        parts.append(EntryWritten(f"{batch_id}/{index}", batch_id, (index, total), user_id,
                                  day, text))
    return parts, rejected
# --8<-- [end:split]


def main() -> None:
    """Split a four-entry import, then split its redelivery into the same inbox."""
    batch = {"batch_id": "imp-7", "user_id": "u-ana", "entries": [
        {"day": "2024-06-03", "text": "First run in months."},
        {"day": "2024-06-04", "text": "Legs sore, walked instead."},
        {"day": "June 5th", "text": "Skipped."},
        {"day": "2024-06-06", "text": "Ran 3 km."}]}
    inbox: set[str] = set()
    for delivery in ("first delivery", "redelivery"):
        parts, rejected = split(batch)
        new = [p.message_id for p in parts if p.message_id not in inbox]
        inbox.update(new)
        print(f"{delivery:<14}: {len(parts)} parts, {len(rejected)} rejected, new to the inbox: "
              f"{new}")
    for part in parts:
        print(f"  {part.message_id} part {part.part[0]} of {part.part[1]} {part.day} {part.text!r}")
    for rejection in rejected:
        print(f"  rejected: {rejection}")


if __name__ == "__main__":
    main()
