"""Quix Streams on a real Kafka-protocol broker (Tansu) computes exactly what the stdlib
aggregator computes: the same windows, the same sums, the same too-late events."""

from __future__ import annotations

import random

import pytest

from snippets.processing.stream_processing_quix import hourly_words, main
from snippets.processing.stream_processing_watermarks import Event, WindowedSum

HOUR, LATENESS = 3600, 1800


@pytest.fixture
def bootstrap(kafka_server, monkeypatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "2000")  # Tansu joins after half of it
    return kafka_server.url


def stdlib(events: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """The stdlib aggregator with one watermark per key (Quix's default), never flushed:
    a stream has no end, so windows close only when time moves past them."""
    windows = WindowedSum(HOUR, allowed_lateness=LATENESS, watermark_per_key=True)
    closed = [r for e in events for r in windows.process(Event(e["user"], e["time"], e["words"]))]
    return ([(r.key, r.start, r.total, r.count) for r in closed],
            [(late.event.key, late.event.time, late.event.value) for late in windows.late])


def shuffled_evening(seed: int, count: int = 60) -> list[dict]:
    """Entries of three users over ten hours, arriving up to 90 minutes late."""
    rng = random.Random(seed)
    written = sorted((rng.randrange(10 * HOUR), rng.choice(["ana", "ben", "cleo"]),
                      rng.randrange(1, 400)) for _ in range(count))
    arrival = sorted(written, key=lambda item: item[0] + rng.randrange(90 * 60))
    return [{"user": user, "time": time, "words": words} for time, user, words in arrival]


def test_main_prints_the_windows_quix_closes_and_its_side_output(bootstrap, capsys):
    assert main() == 0
    assert capsys.readouterr().out.splitlines() == [
        "closed ana 20:00-21:00: 400 words in 3",
        "closed ben 20:00-21:00: 300 words in 1",
        "closed ben 21:00-22:00: 40 words in 1",
        "side output: [('ana', '20:55', 30)]",
    ]


def test_quix_and_the_stdlib_aggregator_agree_on_out_of_order_and_late_input(bootstrap):
    events = shuffled_evening(seed=0)
    expected_windows, expected_late = stdlib(events)
    assert expected_late, "the data set should contain too-late entries"
    windows, too_late = hourly_words(events, lateness_s=LATENESS, bootstrap=bootstrap,
                                     idle_timeout=1.0)
    assert windows == expected_windows
    assert too_late == expected_late


def test_quix_partition_closing_drops_an_event_for_a_closed_window_without_reporting_it(
        bootstrap):
    """Recorded behaviour of quixstreams 3.28.1 (if an upgrade fixes it, update the page):
    with closing_strategy="partition", an event whose window already closed is neither
    counted nor passed to on_late. The default, "key", reports it."""
    events = [{"user": "ana", "time": 60, "words": 1}, {"user": "ana", "time": 70 * 60, "words": 2},
              {"user": "ana", "time": 30 * 60, "words": 4},  # its window 0-1 h has closed
              {"user": "ana", "time": 200 * 60, "words": 8}]
    by_partition = hourly_words(events, lateness_s=300, bootstrap=bootstrap,
                                closing_strategy="partition", idle_timeout=1.0)
    assert by_partition == ([("ana", 0, 1, 1), ("ana", 3600, 2, 1)], [])  # the 4 is gone
    by_key = hourly_words(events, lateness_s=300, bootstrap=bootstrap, idle_timeout=1.0)
    assert by_key == ([("ana", 0, 1, 1), ("ana", 3600, 2, 1)], [("ana", 1800, 4)])


def test_main_says_where_it_looked_when_no_broker_answers(monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert main() == 1
    assert "no Kafka broker at 127.0.0.1:1: set KAFKA_BOOTSTRAP" in capsys.readouterr().err
