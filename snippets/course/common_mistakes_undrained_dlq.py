"""Mistake: a dead-letter queue nobody drains. Failed events wait, then expire.

The evening-reflection consumer has a bug: an entry with an emoji makes it
raise. Its failures go to a dead-letter queue (DLQ), as they should. But
nobody watches the DLQ: it grows by one a day, no alert fires, and after
the queue's retention (14 days, the maximum on Amazon SQS) the oldest
dead letters are deleted. The entries are stored; the reflections that
should have used them never will be.

The fix treats the DLQ as work with an owner: an alert when the oldest dead
letter is older than an hour, or when too many pile up; a fix; and a
redrive that replays the dead letters in order, keeps the ones that still
fail (with one more attempt counted), and removes the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

HOUR, DAY = 1, 24


@dataclass(frozen=True)
class DeadLetter:
    """A failed entry, why it failed, when it was parked, and how often it was tried."""

    entry: str
    reason: str
    since: int  # hour it was dead-lettered
    attempts: int = 1


Handler = Callable[[str], None]


# --8<-- [start:broken]
class ForgottenDLQ:
    """Broken: failures are parked, expire after the retention, and nobody is told."""

    def __init__(self, retention: int = 14 * DAY) -> None:
        self.letters: list[DeadLetter] = []
        self.retention = retention

    def add(self, letter: DeadLetter) -> None:
        """Park a failed entry at the back of the queue."""
        self.letters.append(letter)

    def tick(self, now: int) -> list[DeadLetter]:
        """Drop what is older than the retention; return it (nobody looks)."""
        expired = [d for d in self.letters if now - d.since >= self.retention]
        self.letters = [d for d in self.letters if now - d.since < self.retention]
        return expired
# --8<-- [end:broken]


# --8<-- [start:fixed]
class WatchedDLQ(ForgottenDLQ):
    """Fixed: alerts on age and depth, and a redrive that keeps what still fails."""

    def __init__(self, max_age: int = 1 * HOUR, max_depth: int = 50, **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.max_age, self.max_depth = max_age, max_depth

    def alerts(self, now: int) -> list[str]:
        """What should page the owner now: the oldest letter's age, and the depth."""
        found = []
        if self.letters and now - self.letters[0].since >= self.max_age:
            found.append(f"oldest dead letter is {now - self.letters[0].since} h old "
                         f"({self.letters[0].reason})")
        if len(self.letters) > self.max_depth:
            found.append(f"{len(self.letters)} dead letters (limit {self.max_depth})")
        return found

    def redrive(self, handler: Handler) -> int:
        """Replay every dead letter in order; return how many succeeded."""
        kept = []
        for letter in self.letters:
            try:
                handler(letter.entry)
            except Exception as error:  # noqa: BLE001 - what still fails stays parked
                kept.append(replace(letter, reason=repr(error), attempts=letter.attempts + 1))
        done, self.letters = len(self.letters) - len(kept), kept
        return done
# --8<-- [end:fixed]


def reflect(entry: str) -> None:
    """The buggy handler: the reflection template is encoded as Latin-1."""
    entry.encode("latin-1")


def reflect_fixed(entry: str) -> None:
    """The fix, deployed once someone knows there is something to fix."""
    entry.encode("utf-8")


@dataclass
class Outcome:
    """What twenty days of the bug did."""

    built: int = 0
    expired: int = 0
    first_alert: tuple[int, str] | None = None
    redriven_at: int | None = None


def simulate(dlq: ForgottenDLQ, days: int, respond_after: int | None = None) -> Outcome:
    """One entry with an emoji a day at 20:00; ``respond_after`` hours after the first
    alert, someone deploys the fix and redrives (None: nobody responds)."""
    handler, outcome = reflect, Outcome()
    for now in range(days * DAY):
        if now % DAY == 20:
            entry = f"day {now // DAY + 1}: ran 5 km \N{FIRE}"
            try:
                handler(entry)
                outcome.built += 1
            except UnicodeEncodeError as error:
                dlq.add(DeadLetter(entry, type(error).__name__, since=now))
        outcome.expired += len(dlq.tick(now))
        alerts = dlq.alerts(now) if isinstance(dlq, WatchedDLQ) else []
        if alerts and outcome.first_alert is None:
            outcome.first_alert = (now, alerts[0])
        if (outcome.first_alert and respond_after is not None and outcome.redriven_at is None
                and now >= outcome.first_alert[0] + respond_after):
            handler = reflect_fixed
            outcome.built += dlq.redrive(handler)
            outcome.redriven_at = now
    return outcome


def main() -> None:
    """Twenty days of the reflection bug, with and without anyone watching."""
    for dlq in (ForgottenDLQ(), WatchedDLQ()):
        result = simulate(dlq, days=20, respond_after=4)
        print(f"{type(dlq).__name__:<12}: {result.built} of 20 reflections built, "
              f"{len(dlq.letters)} dead letters waiting, {result.expired} expired for good")
        if result.first_alert:
            hour, text = result.first_alert
            print(f"{'':<12}  alert at hour {hour}: {text}; fixed and redriven at hour "
                  f"{result.redriven_at}")
        else:
            print(f"{'':<12}  no alert in 20 days")


if __name__ == "__main__":
    main()
