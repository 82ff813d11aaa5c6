"""Watermarks and lateness: out-of-order input within the lateness changes nothing; later input
is never lost silently, it goes to the side output."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.processing.stream_processing_watermarks import (
    Event,
    WindowedSum,
    WindowResult,
    main,
    run,
)

HOUR, LATENESS = 3600, 1800
keys = st.sampled_from(["ana", "ben", "cleo"])
events = st.lists(st.builds(Event, keys, st.integers(0, 12 * HOUR), st.integers(0, 500)),
                  max_size=60)


def batch_sums(items: list[Event], size: int, step: int) -> Counter:
    """The answer with the whole input in hand: every window of every event."""
    sums: Counter = Counter()
    for e in items:
        for start in range(e.time - e.time % step - size + step, e.time + 1, step):
            if start <= e.time < start + size:
                sums[(e.key, start)] += e.value
    return sums


def as_sums(results: list[WindowResult]) -> Counter:
    return Counter({(r.key, r.start): r.total for r in results})


@st.composite
def delayed(draw, lateness: int = LATENESS):
    """Events in event-time order, then each held back by at most ``lateness`` seconds."""
    items = sorted(draw(events), key=lambda e: e.time)
    delays = draw(st.lists(st.integers(0, lateness), min_size=len(items), max_size=len(items)))
    arrival = sorted(range(len(items)), key=lambda i: (items[i].time + delays[i], i))
    return items, [items[i] for i in arrival]


@given(delayed(), st.sampled_from([(HOUR, None), (HOUR, 15 * 60), (2 * HOUR, HOUR)]),
       st.booleans())
def test_input_shuffled_within_the_lateness_gives_the_same_windows_as_in_order_input(
        case, shape, per_key):
    in_order, shuffled = case
    size, step = shape
    make = lambda: WindowedSum(size, step, LATENESS, watermark_per_key=per_key)
    first, second = make(), make()
    expected = batch_sums(in_order, size, step or size)
    assert as_sums(run(in_order, first)) == expected
    assert as_sums(run(shuffled, second)) == expected
    assert first.late == second.late == []


@given(events)
def test_whatever_the_order_every_word_is_in_a_window_or_on_the_side_output(arrivals):
    windows = WindowedSum(HOUR, allowed_lateness=LATENESS)
    results = run(arrivals, windows)
    assert len({(r.key, r.start) for r in results}) == len(results)  # each window once
    assert sum(r.total for r in results) + sum(e.event.value for e in windows.late) == \
        sum(e.value for e in arrivals)
    assert sum(r.count for r in results) + len(windows.late) == len(arrivals)


@given(events, st.booleans())
def test_an_event_is_too_late_exactly_when_its_window_ended_before_the_watermark(arrivals, per_key):
    windows = WindowedSum(HOUR, allowed_lateness=LATENESS, watermark_per_key=per_key)
    newest: dict = {}
    expected_late = []
    for e in arrivals:
        scope = e.key if per_key else None
        newest[scope] = max(newest.get(scope, e.time), e.time)
        if e.time - e.time % HOUR + HOUR <= newest[scope] - LATENESS:
            expected_late.append(e)
        before = windows.watermark(e.key)
        windows.process(e)
        assert before is None or windows.watermark(e.key) >= before  # never goes back
    assert [late.event for late in windows.late] == expected_late


def test_a_window_is_final_once_closed_and_a_late_event_does_not_reopen_it():
    windows = WindowedSum(HOUR, allowed_lateness=LATENESS)
    assert windows.process(Event("ana", 100, 5)) == []
    closed = windows.process(Event("ana", 2 * HOUR, 1))  # watermark 1.5 h: 0-1 h closes
    assert closed == [WindowResult("ana", 0, HOUR, 5, 1)]
    assert windows.process(Event("ana", 200, 7)) == []
    assert windows.late[0].event == Event("ana", 200, 7) and windows.late[0].missed == (0,)
    assert windows.flush() == [WindowResult("ana", 2 * HOUR, 3 * HOUR, 1, 1)]


def test_an_event_that_misses_only_its_oldest_hopping_windows_counts_in_the_open_ones():
    windows = WindowedSum(HOUR, step=HOUR // 2, allowed_lateness=0)
    windows.process(Event("ana", 5400, 1))  # watermark 1:30: windows ending by then are closed
    windows.process(Event("ana", 3000, 10))  # in 0:00-1:00 (closed) and 0:30-1:30 (closed)
    windows.process(Event("ana", 4000, 100))  # in 0:30-1:30 (closed) and 1:00-2:00 (open)
    assert [(late.event.value, late.missed) for late in windows.late] == [(10, (0, 1800)),
                                                                           (100, (1800,))]
    sums = as_sums(windows.flush())
    assert sums[("ana", 3600)] == 101 and 10 not in sums.values()


def test_with_one_watermark_per_key_a_quiet_key_keeps_its_window_open():
    shared, per_key = WindowedSum(HOUR, allowed_lateness=0), \
        WindowedSum(HOUR, allowed_lateness=0, watermark_per_key=True)
    for windows in (shared, per_key):
        windows.process(Event("ben", 600, 3))
    assert shared.process(Event("ana", 2 * HOUR, 1)) == [WindowResult("ben", 0, HOUR, 3, 1)]
    assert per_key.process(Event("ana", 2 * HOUR, 1)) == []  # ben's clock has not moved
    assert per_key.watermark("ben") == 600 and per_key.watermark("ana") == 2 * HOUR
    assert shared.watermark("ben") == shared.watermark() == 2 * HOUR


@pytest.mark.parametrize("size, step, lateness", [(0, None, 0), (60, 61, 0), (60, 30, -1)])
def test_a_window_shape_that_cannot_work_is_refused_with_the_values(size, step, lateness):
    with pytest.raises(ValueError, match=f"size={size}"):
        WindowedSum(size, step, lateness)


def test_a_malformed_event_is_refused_and_the_open_windows_are_untouched():
    windows = WindowedSum(HOUR, allowed_lateness=LATENESS)
    windows.process(Event("ana", 100, 5))
    with pytest.raises(TypeError, match="must be ints"):
        windows.process(Event("ana", "19:05", 5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be ints"):
        windows.process(Event("ana", 200, 2.5))  # type: ignore[arg-type]
    assert windows.flush() == [WindowResult("ana", 0, HOUR, 5, 1)]
    assert windows.watermark() == 100 - LATENESS


def test_main_shows_the_watermark_closing_windows_and_the_too_late_entry(capsys):
    main()
    out = capsys.readouterr().out
    assert "ana 20:55  30 words -> watermark 21:10  TOO LATE: side output" in out
    assert "closed ana 20:00-21:00: 400 words in 3" in out
    assert "side output  : [('ana', '20:55', 30)]" in out
    windowed = [int(line.rsplit(": ", 1)[1].split()[0]) for line in out.splitlines()
                if line.endswith(("in 1", "in 2", "in 3"))]
    assert sum(windowed) == 930 - 30  # every word but the too-late entry's 30
