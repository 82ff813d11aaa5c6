"""A tolerant reader beside a strict one, fed the same event from a newer producer.

The strict reader is the common shortcut ``Goal(**data)``: the first field
that a newer producer adds breaks it. The tolerant reader takes the fields it
needs, checks their types, fills in defaults for missing optional ones and
ignores the rest. It is tolerant, not blind: a
missing required field or a wrong type is still an error that names the field.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, get_type_hints


@dataclass(frozen=True)
class Goal:
    """What the streak tracker needs to know about a goal."""

    goal_id: str
    title: str
    sessions_per_week: int
    note: str = ""
    paused: bool = False


def read_strict(data: dict[str, Any]) -> Goal:
    """``Goal(**data)``: a ``TypeError`` on any key that ``Goal`` does not declare."""
    return Goal(**data)


# --8<-- [start:tolerant]
def read_tolerant(data: dict[str, Any]) -> Goal:
    """Take the fields ``Goal`` declares, default the optional ones, ignore the rest.

    Raises:
        ValueError: a required field is missing, or a field has the wrong type;
            the message names every such field.
    """
    if not isinstance(data, dict):
        raise ValueError(f"goal data must be an object, got {type(data).__name__}")
    hints, values, problems = get_type_hints(Goal), {}, []
    for spec in fields(Goal):
        if spec.name not in data:
            if spec.default is MISSING:
                problems.append(f"{spec.name}: required, missing")
            continue
        value, kind = data[spec.name], hints[spec.name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"{spec.name}: expected {kind.__name__}, got {value!r}")
        values[spec.name] = value
    if problems:
        raise ValueError("cannot read goal: " + "; ".join(problems))
    return Goal(**values)
# --8<-- [end:tolerant]


def main() -> None:
    """A newer producer adds ``reminder_time`` and leaves out ``note``."""
    from_newer_producer = {"goal_id": "g-7", "title": "Meditate", "sessions_per_week": 5,
                           "reminder_time": "07:30"}
    for reader in (read_strict, read_tolerant):
        try:
            print(f"{reader.__name__:13}: {reader(from_newer_producer)}")
        except (TypeError, ValueError) as error:
            print(f"{reader.__name__:13}: {type(error).__name__}: {error}")
    broken = {"goal_id": "g-8", "sessions_per_week": "5", "colour": "blue"}
    try:
        read_tolerant(broken)
    except ValueError as error:
        print(f"{'read_tolerant':13}: {error}")


if __name__ == "__main__":
    main()
