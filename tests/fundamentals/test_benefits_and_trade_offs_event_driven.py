"""Events: the producer keeps working while a consumer is down; reads lag until delivery."""

from __future__ import annotations

from snippets.fundamentals.benefits_and_trade_offs_event_driven import (
    Consumer,
    EntryWritten,
    EventLog,
    Journal,
    main,
)


def make_log(seen: dict[str, list[str]]) -> EventLog:
    log = EventLog()
    log.consumers = [Consumer(name, lambda e, n=name: seen[n].append(e.entry_id))
                     for name in seen]
    return log


def test_the_journal_saves_while_a_consumer_is_down_and_it_catches_up_later():
    seen: dict[str, list[str]] = {"goals": [], "coach": []}
    log = make_log(seen)
    journal = Journal(log)
    log.consumers[1].up = False

    ids = [journal.save_entry(f"entry {i}", "run 5 km", f"req-{i}") for i in range(3)]
    log.deliver()
    assert ids == ["entry-1", "entry-2", "entry-3"]
    assert seen == {"goals": ids, "coach": []}
    assert log.lag("coach") == 3 and log.lag("goals") == 0

    log.consumers[1].up = True
    log.deliver()
    assert seen["coach"] == ids  # in order, nothing lost
    assert log.lag("coach") == 0


def test_reads_are_stale_until_delivery_runs():
    seen: dict[str, list[str]] = {"goals": []}
    log = make_log(seen)
    Journal(log).save_entry("Ran", "run 5 km", "req-1")
    assert seen["goals"] == []  # eventual consistency: not yet
    log.deliver()
    assert seen["goals"] == ["entry-1"]


def test_a_failing_handler_keeps_its_offset_and_does_not_block_the_others():
    attempts: list[str] = []
    healthy: list[str] = []

    def flaky(event: EntryWritten) -> None:
        attempts.append(event.entry_id)
        if len(attempts) == 1:
            raise TimeoutError("model call timed out")

    log = EventLog(consumers=[Consumer("coach", flaky),
                              Consumer("goals", lambda e: healthy.append(e.entry_id))])
    journal = Journal(log)
    journal.save_entry("a", "g", "req-1")
    journal.save_entry("b", "g", "req-2")
    log.deliver()
    assert healthy == ["entry-1", "entry-2"]
    assert log.lag("coach") == 2
    assert "req-1 entry-1 -> coach failed: model call timed out" in log.trail
    log.deliver()
    assert attempts == ["entry-1", "entry-1", "entry-2"]  # at-least-once: retried
    assert log.lag("coach") == 0


def test_the_trail_rebuilds_what_happened_to_one_request():
    seen: dict[str, list[str]] = {"goals": [], "reflections": []}
    log = make_log(seen)
    journal = Journal(log)
    journal.save_entry("a", "g", "req-1")
    journal.save_entry("b", "g", "req-2")
    log.deliver()
    assert [t for t in log.trail if t.startswith("req-2")] == [
        "req-2 entry-2 -> goals",
        "req-2 entry-2 -> reflections",
    ]


def test_the_demo_shows_lag_catch_up_and_the_trail(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "entry-1 saved; goal progress read at once: 0  <- stale"
    assert out[1] == "after delivery: progress 1, coach lag 1"
    assert out[2] == "entry-2 saved while the coach is down; coach lag 2"
    assert out[3] == "coach back: 2 notes, lag 0, reflections 2"
    assert out[-3:] == ["  req-8 entry-2 -> goals", "  req-8 entry-2 -> reflections",
                        "  req-8 entry-2 -> coach"]
