"""The in-memory log: its demo, compaction that never changes the table a replay rebuilds,
trimming that does, tombstones and their retention, and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.messaging.retention_and_compaction_log import Log, goal_log, main, table

EXPECTED = """\
history : 8 records; current goals of ['ana', 'cat', 'dan']
trim    : dropped 4; replay from 0 sees offsets [4, 5, 6, 7], missed 4
          rebuilt goals of ['ana', 'cat'] != history
compact : dropped 4; replay from 0 sees offsets [1, 5, 6, 7], missed 0
          rebuilt goals of ['ana', 'cat', 'dan'] == history
late    : the reader resumes at 5, sees [6, 7], and still has ben: True
"""


def test_the_demo_shows_what_trimming_and_compaction_do_to_a_replay(capsys):
    main()
    assert capsys.readouterr().out == EXPECTED


operations = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from("abcd"), st.one_of(st.none(), st.text("xyz", max_size=2))),
    st.tuples(st.just("compact"), st.integers(0, 200), st.none())), max_size=40)


@settings(max_examples=150, deadline=None)
@given(segment=st.integers(1, 5), retention=st.integers(0, 100), ops=operations)
def test_compaction_never_changes_the_table_a_replay_rebuilds(segment, retention, ops):
    log, history, now = Log(segment_size=segment, delete_retention=retention), [], 0
    for op, arg, value in ops:
        now += 10
        if op == "put":
            log.append(arg, value, at=now)
            history.append(log.records[-1])
        else:
            log.compact(now=now + arg)
        assert table(log.records) == table(history)
        by_offset = {r.offset: r for r in history}
        assert all(by_offset[r.offset] == r for r in log.records)  # offsets never change
        assert [r.offset for r in log.records] == sorted({r.offset for r in log.records})
        active = log.next_offset - log.next_offset % segment
        assert [r for r in log.records if r.offset >= active] == [
            r for r in history if r.offset >= active]  # the active segment is untouched
        assert log.log_start == 0  # compaction leaves gaps, it never moves the start


def test_after_compaction_each_key_has_one_record_in_the_closed_segments():
    log = goal_log()
    log.append("eve", "swim", at=480)  # offset 8: 0-8 are three closed segments
    log.compact(now=10_000)
    keys = [r.key for r in log.records if r.offset < 9]
    assert len(keys) == len(set(keys)) and "ben" not in keys  # tombstone past retention


def test_a_reader_that_resumes_within_the_tombstone_retention_sees_the_deletion():
    log = goal_log()
    seen = table(log.read(0)[0][:5])
    log.compact(now=400)  # the tombstone (written at 300 s) is 100 s old: kept for 600 s
    rest, missed = log.read(5)
    assert rest[0].key == "ben" and rest[0].value is None and missed == 0
    assert "ben" not in table(rest, seen)


def test_trimming_by_length_and_by_id_moves_the_start_and_reports_what_a_reader_missed():
    log = goal_log()
    assert log.trim(maxlen=100) == 0 and log.log_start == 0
    assert log.trim(minid=3) == 3 and log.log_start == 3
    records, missed = log.read(1)
    assert [r.offset for r in records] == [3, 4, 5, 6, 7] and missed == 2
    assert log.trim(maxlen=0) == 5 and log.records == [] and log.log_start == 8
    assert log.read(8) == ([], 0)


def test_bad_input_is_refused_and_nothing_stored_is_lost():
    log = goal_log()
    for bad in ("", None, 7):
        with pytest.raises(ValueError, match="non-empty string key"):
            log.append(bad, "x", at=0)
    assert len(log.records) == 8 and log.next_offset == 8
    for options in ({"segment_size": 0}, {"delete_retention": -1}):
        with pytest.raises(ValueError, match="segment_size must be >= 1"):
            Log(**options)
