"""Window assigners: each kind covers time the way its definition says, whatever the input order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snippets.processing.stream_processing_windows import (
    HOUR,
    MINUTE,
    Window,
    evening,
    event_time,
    hopping,
    main,
    processing_time,
    sessions,
    sliding,
    tumbling,
    words_per_window,
)

times = st.integers(min_value=0, max_value=10 * 24 * HOUR)


@given(times, st.integers(1, 5 * HOUR))
def test_a_tumbling_window_holds_its_time_and_starts_on_a_multiple_of_its_size(t, size):
    window = tumbling(t, size)
    assert window.start <= t < window.end
    assert window.start % size == 0 and window.end - window.start == size


@given(times, st.integers(1, 12), st.integers(1, 12))
def test_an_event_falls_in_exactly_size_over_step_hopping_windows(t, steps_per_window, step_min):
    step = step_min * MINUTE
    size = step * steps_per_window
    windows = hopping(t, size, step)
    assert len(windows) == steps_per_window
    assert all(w.start <= t < w.end and w.start % step == 0 for w in windows)
    assert windows == sorted(set(windows))


def test_hopping_with_step_equal_to_size_is_tumbling():
    assert hopping(5000, HOUR, HOUR) == [tumbling(5000, HOUR)]


@given(st.lists(times, max_size=30), st.integers(1, 3 * HOUR))
def test_a_sliding_window_ends_at_its_event_and_covers_the_size_before_it(ts, size):
    windows = sliding(ts, size)
    assert [w.end - 1 for w in windows] == sorted(ts)
    assert all(w.end - w.start == size for w in windows)


@given(st.lists(times, min_size=1, max_size=40), st.integers(1, 2 * HOUR), st.randoms())
def test_sessions_do_not_depend_on_arrival_order_and_are_separated_by_the_gap(ts, gap, random):
    shuffled = list(ts)
    random.shuffle(shuffled)
    result = sessions(shuffled, gap)
    assert result == sessions(sorted(ts), gap)
    assert all(nxt.start - (prev.end - 1) >= gap for prev, nxt in itertools.pairwise(result))
    assert sum(sum(1 for t in ts if w.start <= t < w.end) for w in result) == len(ts)


def test_a_late_event_can_merge_two_sessions_into_one():
    assert sessions([0, 40 * MINUTE], gap=30 * MINUTE) == [Window(0, 1), Window(2400, 2401)]
    assert sessions([0, 40 * MINUTE, 20 * MINUTE], gap=30 * MINUTE) == [Window(0, 2401)]


@pytest.mark.parametrize("bad", [lambda: tumbling(5, 0), lambda: hopping(5, 60, 0),
                                 lambda: hopping(5, 60, 61), lambda: sessions([1], 0),
                                 lambda: sliding([1], -1)])
def test_sizes_and_steps_that_make_no_window_are_refused(bad):
    with pytest.raises(ValueError, match="need 0 < step <= size"):
        bad()


def test_offline_entries_land_in_the_wrong_hour_by_processing_time_and_the_right_one_by_event_time():
    hourly = lambda t: [tumbling(t, HOUR)]
    by_processing = words_per_window(evening(), hourly, processing_time)
    by_event = words_per_window(evening(), hourly, event_time)
    assert by_processing[Window(20 * HOUR, 21 * HOUR)] == 200
    assert by_event[Window(20 * HOUR, 21 * HOUR)] == 400
    assert sum(by_processing.values()) == sum(by_event.values()) == 700


def test_main_prints_each_kind_of_window(capsys):
    main()
    out = capsys.readouterr().out
    assert "hourly words by event time     : 20:00-21:00 400, 21:00-22:00 150" in out
    assert "sessions, 30 min of silence    : 20:05-21:10 460" in out
    assert "sliding, the hour up to each   : 20:05 120, 20:25 200, 20:45 400, 21:10 340" in out
