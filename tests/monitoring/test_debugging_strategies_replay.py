"""Tests of replay and time-travel debugging over an event store."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.monitoring.debugging_strategies_replay import (
    Event,
    EventStore,
    WeeklyGoal,
    first_bad_position,
    healthy,
    main,
    replay,
)

MONDAY = date(2025, 3, 3)


def week(store: EventStore, offsets: list[int], stream: str = "goal") -> None:
    store.append(stream, "GoalSet", week=MONDAY.isoformat())
    for n, offset in enumerate(offsets):
        store.append(stream, "EntryWritten", day=(MONDAY + timedelta(offset)).isoformat(),
                     entry=f"e{n}")


def test_reading_up_to_a_position_sees_exactly_the_past(tmp_path):
    store = EventStore(str(tmp_path / "events.sqlite3"))
    week(store, [0, 1, 2])
    store.append("other", "EntryWritten", day="2025-03-05", entry="x")
    assert [e.position for e in store.read(up_to=2)] == [1, 2]
    assert [e.position for e in store.read(stream="goal")] == [1, 2, 3, 4]
    assert [e.stream for e in store.read()] == ["goal"] * 4 + ["other"]
    assert store.read(up_to=0) == []


def test_replay_records_nudges_instead_of_sending_them():
    sent: list[str] = []
    live = WeeklyGoal(target=2, nudge=sent.append)
    events = [Event(1, "g", "GoalSet", {"week": "2025-03-03"}),
              Event(2, "g", "EntryWritten", {"day": "2025-03-03"}),
              Event(3, "g", "EntryWritten", {"day": "2025-03-04"})]
    for event in events:
        live.apply(event)
    goal, recorded = replay(events, target=2)
    assert sent == ["goal reached on 2025-03-04"]  # the live run sent it once...
    assert recorded == sent                         # ...the replay only recorded it
    assert goal.sessions == 2


def test_the_binary_search_names_the_second_entry_of_one_evening():
    store = EventStore()
    week(store, [0, 1, 2, 2, 3])
    bad = first_bad_position(store, "goal")
    assert bad == 5
    assert store.read(up_to=bad)[-1].data == {"day": "2025-03-05", "entry": "e3"}


def test_a_healthy_stream_or_an_empty_one_has_no_bad_position():
    store = EventStore()
    assert first_bad_position(store, "goal") is None
    week(store, [0, 1, 2, 3])
    assert first_bad_position(store, "goal") is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=14).map(sorted))
def test_the_binary_search_agrees_with_a_linear_scan(offsets):
    store = EventStore()
    week(store, offsets)
    events = store.read(stream="goal")
    linear = next((e.position for e in events
                   if not healthy(replay(store.read(up_to=e.position))[0])), None)
    assert first_bad_position(store, "goal") == linear


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=14).map(sorted))
def test_the_fixed_projection_never_breaks_the_invariant(offsets):
    store = EventStore()
    week(store, offsets)
    goal, nudges = replay(store.read(), distinct_days=True)
    assert healthy(goal)
    assert goal.sessions == len(set(offsets))
    assert len(nudges) == (1 if len(set(offsets)) >= 7 else 0)


def test_a_projection_without_a_goal_has_no_evenings():
    goal, _ = replay([Event(1, "g", "EntryWritten", {"day": "2025-03-03"})])
    assert goal.evenings_so_far() == 0


def test_a_later_evening_does_not_hide_an_earlier_double_count():
    store = EventStore()
    week(store, [0, 0, 2])  # sessions 3 in 3 evenings passed: looks fine, is not
    goal, _ = replay(store.read())
    assert (goal.sessions, goal.evenings_so_far()) == (3, 3)
    assert not healthy(goal)
    assert first_bad_position(store, "goal") == 3


def test_the_demo_finds_position_9_and_the_fix_moves_the_nudge_to_sunday(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "now: 8 sessions in 7 evenings, nudges ['goal reached on 2025-03-08']"
    assert lines[3] == "first bad position: 9 = EntryWritten {'day': '2025-03-05', 'entry': 'e4'}"
    assert lines[5] == "buggy: sessions=4 healthy=False nudges=[]"
    assert lines[6] == "fixed: sessions=3 healthy=True nudges=[]"
    assert lines[7] == "fixed, whole week: 7 sessions, nudges ['goal reached on 2025-03-09']"


class LiveStore(EventStore):
    """A store that the app keeps writing to while someone bisects it: after the first
    read, a second entry on an evening already written is appended."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, **kwargs):
        self.reads += 1
        if self.reads == 2:
            self.append("goal", "EntryWritten", day=(MONDAY + timedelta(1)).isoformat(),
                        entry="late")
        return super().read(**kwargs)


def test_a_bisection_while_events_arrive_never_names_a_healthy_position():
    store = LiveStore()
    week(store, [0, 1, 2])
    bad = first_bad_position(store, "goal")
    if bad is not None:
        culprit = replay(store.read(stream="goal", up_to=bad))[0]
        assert not healthy(culprit), f"named position {bad}, where the state was healthy"
    assert bad is None  # it bisects the snapshot it read, which was healthy
    assert first_bad_position(store, "goal") == 5  # a fresh search sees the late entry


def test_a_replay_in_another_process_reproduces_the_same_state_and_nudges(tmp_path):
    import json
    import os
    import subprocess
    import sys

    path = tmp_path / "events.sqlite3"
    week(EventStore(str(path)), [0, 1, 2, 2, 3, 4, 5, 6])
    child = ("import json, sys\n"
             "from snippets.monitoring.debugging_strategies_replay import EventStore, replay\n"
             "goal, nudges = replay(EventStore(sys.argv[1]).read(stream='goal'))\n"
             "print(json.dumps([goal.sessions, sorted(goal.days), goal.evenings_so_far(), nudges]))")
    outputs = {subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True,
                              text=True, check=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("0", "1", "4242")}
    assert len(outputs) == 1  # the same in every process, whatever the hash seed
    here, nudges = replay(EventStore(str(path)).read(stream="goal"))
    assert json.loads(outputs.pop()) == [8, sorted(here.days), 7, ["goal reached on 2025-03-08"]]
    assert nudges == ["goal reached on 2025-03-08"]
