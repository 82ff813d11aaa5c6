"""The coaching flow with direct calls: the journal calls every service itself.

Saving an entry calls the goal tracker, the coach and the reflection
collector in turn. The answer is immediately consistent and one stack
trace tells the whole story, but the journal is only as available as the
least available service it calls, and a failure half-way leaves the
services that already ran out of step with the ones that did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ServiceUnavailable(Exception):
    """A downstream service did not answer."""


@dataclass
class Goals:
    """Counts journal sessions per goal."""

    progress: dict[str, int] = field(default_factory=dict)

    def record_session(self, goal: str) -> None:
        self.progress[goal] = self.progress.get(goal, 0) + 1


@dataclass
class Coach:
    """Writes a short reaction to each entry; may be down."""

    up: bool = True
    notes: list[str] = field(default_factory=list)

    def react(self, text: str) -> None:
        if not self.up:
            raise ServiceUnavailable("coach is not answering")
        self.notes.append(f"noticed: {text[:24]}")


@dataclass
class Reflections:
    """Collects entries for the evening reflection."""

    today: list[str] = field(default_factory=list)

    def collect(self, text: str) -> None:
        self.today.append(text)


@dataclass
class Journal:
    """Saves an entry and then calls each service directly, in order."""

    goals: Goals
    coach: Coach
    reflections: Reflections
    entries: list[str] = field(default_factory=list)

    def save_entry(self, text: str, goal: str) -> int:
        """Return the entry number, or raise if any service call fails."""
        self.goals.record_session(goal)
        self.coach.react(text)  # every new consumer means a new line here
        self.reflections.collect(text)
        self.entries.append(text)
        return len(self.entries)


def main() -> None:
    """Save one entry with every service up, then one while the coach is down."""
    goals, coach, reflections = Goals(), Coach(), Reflections()
    journal = Journal(goals, coach, reflections)

    number = journal.save_entry("Ran 3 km before work", goal="run 5 km")
    print(f"entry {number} saved; goal progress at once: {goals.progress['run 5 km']}")

    coach.up = False
    try:
        journal.save_entry("Skipped the run, rain", goal="run 5 km")
    except ServiceUnavailable as error:
        print(f"entry 2 refused to the user: {error}")
    print(f"entries saved: {len(journal.entries)}")
    print(f"goal sessions counted: {goals.progress['run 5 km']}  <- includes the refused entry")
    print(f"entries in tonight's reflection: {len(reflections.today)}")


if __name__ == "__main__":
    main()
