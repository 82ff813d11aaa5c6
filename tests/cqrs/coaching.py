"""Coaching histories for the query-side tests, and what the read models must say about them.

``histories()`` is a Hypothesis strategy for valid event histories (goals set
before their sessions, achievements when a target is reached, entries in any
day order, insights). ``expected()`` folds a history in plain Python, written
independently of the read models, into what their queries must answer.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

USERS = ["ana", "ben", "cy"]
DAYS = [(date(2025, 3, 1) + timedelta(days=i)).isoformat() for i in range(6)]

actions = st.one_of(
    st.tuples(st.just("entry"), st.sampled_from(USERS), st.sampled_from(DAYS),
              st.integers(0, 500), st.integers(1, 5)),
    st.tuples(st.just("goal"), st.sampled_from(USERS), st.integers(1, 4)),
    st.tuples(st.just("session"), st.integers(0, 5), st.sampled_from(DAYS)),
    st.tuples(st.just("insight"), st.sampled_from(USERS), st.sampled_from(DAYS)),
)


def build(steps: list[tuple]) -> list[tuple[str, str, dict[str, Any]]]:
    """Turn drawn actions into a valid history of (stream, type, data)."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    goals: list[dict[str, Any]] = []
    for step in steps:
        kind = step[0]
        if kind == "entry":
            _, user, day, words, mood = step
            events.append((f"journal-{user}", "EntryWritten", {
                "user": user, "entry_id": f"e{len(events)}", "day": day, "words": words,
                "mood": mood}))
        elif kind == "goal":
            _, user, target = step
            goal = {"user": user, "goal_id": f"g{len(goals)}", "target": target, "sessions": 0}
            goals.append(goal)
            events.append((f"goal-{goal['goal_id']}", "GoalSet", {
                "user": user, "goal_id": goal["goal_id"], "title": f"Goal {len(goals)}",
                "target": target}))
        elif kind == "session":
            _, index, day = step
            open_goals = [g for g in goals if g["sessions"] < g["target"]]
            if not open_goals:
                continue
            goal = open_goals[index % len(open_goals)]
            goal["sessions"] += 1
            base = {"user": goal["user"], "goal_id": goal["goal_id"], "day": day}
            events.append((f"goal-{goal['goal_id']}", "SessionLogged",
                           {**base, "entry_id": f"x{len(events)}"}))
            if goal["sessions"] == goal["target"]:
                events.append((f"goal-{goal['goal_id']}", "GoalAchieved",
                               {**base, "sessions": goal["target"]}))
        else:
            _, user, day = step
            events.append((f"coach-{user}", "InsightRecorded", {
                "user": user, "day": day, "agent": "mood", "text": f"note {len(events)}"}))
    return events


histories = st.lists(actions, max_size=40).map(build)


def expected(events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """What the dashboard, reflection and follow-up queries must answer."""
    dashboards: dict[str, dict[str, Any]] = {}
    goals: dict[str, dict[str, Any]] = {}
    days: dict[tuple[str, str], dict[str, Any]] = {}
    titles: dict[str, str] = {}
    follow: dict[str, tuple[str, str, str, int]] = {}

    def dash(user: str) -> dict[str, Any]:
        return dashboards.setdefault(user, {"entries": 0, "words": 0, "last_day": None,
                                            "streak": 0, "active": 0, "achieved": 0})

    def day_row(user: str, day: str) -> dict[str, Any]:
        return days.setdefault((user, day), {"entries": 0, "words": 0, "mood": 0,
                                             "progressed": [], "achieved": [], "notes": []})

    for _, type_, d in events:
        if type_ == "EntryWritten":
            row, day = dash(d["user"]), date.fromisoformat(d["day"])
            row["entries"] += 1
            row["words"] += d["words"]
            last = row["last_day"] and date.fromisoformat(row["last_day"])
            if last is None or day > last + timedelta(days=1):
                row["streak"] = 1
            elif day == last + timedelta(days=1):
                row["streak"] += 1
            if last is None or day > last:
                row["last_day"] = d["day"]
            summary = day_row(d["user"], d["day"])
            summary["entries"] += 1
            summary["words"] += d["words"]
            summary["mood"] += d["mood"]
            if d["mood"] <= 2:
                follow[d["entry_id"]] = (d["day"], d["user"], d["entry_id"], d["mood"])
        elif type_ == "GoalSet":
            dash(d["user"])["active"] += 1
            goals[d["goal_id"]] = {"user": d["user"], "title": d["title"], "sessions": 0,
                                   "target": d["target"], "achieved": False}
            titles[d["goal_id"]] = d["title"]
        elif type_ == "SessionLogged":
            goals[d["goal_id"]]["sessions"] += 1
            progressed = day_row(d["user"], d["day"])["progressed"]
            if titles[d["goal_id"]] not in progressed:
                progressed.append(titles[d["goal_id"]])
        elif type_ == "GoalAchieved":
            goals[d["goal_id"]]["achieved"] = True
            dash(d["user"])["active"] -= 1
            dash(d["user"])["achieved"] += 1
            day_row(d["user"], d["day"])["achieved"].append(titles[d["goal_id"]])
        elif type_ == "InsightRecorded":
            day_row(d["user"], d["day"])["notes"].append(f"{d['agent']}: {d['text']}")
            follow = {k: v for k, v in follow.items()
                      if not (v[1] == d["user"] and v[0] <= d["day"])}

    dashboard_answers = {}
    for user, row in dashboards.items():
        lines = tuple((g["title"], g["sessions"], g["target"], g["achieved"])
                      for goal_id, g in sorted(goals.items()) if g["user"] == user)
        dashboard_answers[user] = (user, row["entries"], row["words"], row["last_day"],
                                   row["streak"], row["active"], row["achieved"], lines)
    reflection_answers = {
        key: (*key, row["entries"], row["words"],
              row["mood"] / row["entries"] if row["entries"] else None,
              tuple(row["progressed"]), tuple(row["achieved"]), tuple(row["notes"]))
        for key, row in days.items()}
    return {"dashboards": dashboard_answers, "reflections": reflection_answers,
            "follow_ups": sorted(follow.values(), key=lambda v: (v[0], v[2]))}


def answers(queries: Any) -> dict[str, Any]:
    """What a query-handler object (SQLite or PostgreSQL) answers, in expected()'s shape."""
    dashboards = {}
    for user in USERS:
        found = queries.dashboard(user)
        if found is not None:
            dashboards[user] = (found.user, found.entries, found.words, found.last_day,
                                found.streak, found.active_goals, found.achieved_goals,
                                tuple((g.title, g.sessions, g.target, g.achieved)
                                      for g in found.goals))
    reflections = {}
    for user in USERS:
        for day in DAYS:
            found = queries.evening_reflection(user, day)
            if found is not None:
                reflections[(user, day)] = (user, day, found.entries, found.words, found.mood,
                                            found.progressed, found.achieved, found.notes)
    return {"dashboards": dashboards, "reflections": reflections,
            "follow_ups": [tuple(row) for row in queries.follow_ups()]}


def sample_history(steps: int, seed: int = 7) -> list[tuple[str, str, dict[str, Any]]]:
    """A fixed, fairly busy history of about ``steps`` events, for the crash and race tests."""
    import random

    rng = random.Random(seed)
    drawn: list[tuple] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.5:
            drawn.append(("entry", rng.choice(USERS), rng.choice(DAYS), rng.randint(0, 500),
                          rng.randint(1, 5)))
        elif roll < 0.6:
            drawn.append(("goal", rng.choice(USERS), rng.randint(1, 6)))
        elif roll < 0.9:
            drawn.append(("session", rng.randint(0, 5), rng.choice(DAYS)))
        else:
            drawn.append(("insight", rng.choice(USERS), rng.choice(DAYS)))
    return build(drawn)
