"""Vector clocks: exact causality, detected concurrency, and replicas that converge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.course.concept_sheet_vector_clock import Order, Replica, VectorClock, main
from tests.course.causality import run, steps

clocks = st.dictionaries(st.sampled_from(["phone", "laptop", "server", "watch"]),
                         st.integers(0, 4)).map(VectorClock)


def test_the_demo_keeps_two_offline_edits_as_siblings_until_ana_resolves_them(capsys):
    main()
    assert capsys.readouterr().out == (
        "set 10 km [phone:1] vs change to 5 km [laptop:1 phone:1]: before\n"
        "change to 5 km [laptop:1 phone:1] vs offline 12 km [phone:2]: concurrent\n"
        "after the laptop's write  : ['5 km']\n"
        "after the phone syncs     : ['5 km', '12 km']  (siblings: ask Ana)\n"
        "late duplicate of 10 km   : applied=False\n"
        "after Ana resolves [laptop:1 phone:3]: ['12 km']\n")


def test_two_concurrent_updates_are_reported_as_concurrent():
    base = VectorClock().increment("phone")
    on_phone, on_laptop = base.increment("phone"), base.increment("laptop")
    assert on_phone.compare(on_laptop) is Order.CONCURRENT
    assert on_laptop.compare(on_phone) is Order.CONCURRENT
    assert not on_phone < on_laptop and not on_laptop < on_phone


def test_causally_ordered_updates_are_not_reported_as_concurrent():
    first = VectorClock().increment("phone")
    seen_by_laptop = first.merge(VectorClock()).increment("laptop")
    assert first.compare(seen_by_laptop) is Order.BEFORE
    assert seen_by_laptop.compare(first) is Order.AFTER
    assert first < seen_by_laptop and first <= seen_by_laptop
    assert first.compare(VectorClock({"phone": 1})) is Order.EQUAL


@settings(max_examples=150, deadline=None)
@given(steps)
def test_clock_comparison_is_exactly_the_happened_before_relation_of_any_execution(program):
    execution = run(program)
    events = execution.events
    for i, a in enumerate(events):
        for j, b in enumerate(events):
            if execution.happened_before(i, j):
                assert a.vector.compare(b.vector) is Order.BEFORE
            elif execution.happened_before(j, i):
                assert a.vector.compare(b.vector) is Order.AFTER
            elif i != j:
                assert a.vector.compare(b.vector) is Order.CONCURRENT, (i, j)


@given(clocks)
def test_happened_before_is_irreflexive(a):
    assert not a < a and a <= a  # noqa: PLR0124 - reflexivity is the point


@given(clocks, clocks)
def test_happened_before_is_asymmetric_and_compare_mirrors_itself(a, b):
    assert not (a < b < a)
    mirror = {Order.BEFORE: Order.AFTER, Order.AFTER: Order.BEFORE,
              Order.EQUAL: Order.EQUAL, Order.CONCURRENT: Order.CONCURRENT}
    assert b.compare(a) is mirror[a.compare(b)]


@given(clocks, clocks, clocks)
def test_happened_before_is_transitive(a, b, c):
    if a < b < c:
        assert a < c


@given(clocks, clocks, clocks)
def test_merge_is_commutative_associative_and_idempotent(a, b, c):
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a


@given(clocks, clocks, clocks)
def test_merge_is_the_least_clock_that_has_seen_both(a, b, c):
    merged = a.merge(b)
    assert a <= merged and b <= merged
    if a <= c and b <= c:
        assert merged <= c


def test_a_zero_counter_is_the_same_clock_as_a_missing_one():
    assert VectorClock({"phone": 0}) == VectorClock()
    assert hash(VectorClock({"phone": 0, "laptop": 2})) == hash(VectorClock({"laptop": 2}))
    assert repr(VectorClock({"phone": 1, "laptop": 2})) == "[laptop:2 phone:1]"


@pytest.mark.parametrize(("counts", "message"), [
    ({"": 1}, "node id must be a non-empty str, not ''"),
    ({3: 1}, "node id must be a non-empty str, not 3"),
    ({"phone": -1}, "counter of 'phone' must be an int >= 0, not -1"),
    ({"phone": True}, "counter of 'phone' must be an int >= 0, not True"),
    ({"phone": "2"}, "counter of 'phone' must be an int >= 0, not '2'"),
])
def test_a_malformed_clock_is_refused_with_the_problem_named(counts, message):
    with pytest.raises(ValueError, match=message):
        VectorClock(counts)


def test_a_clock_compares_only_with_clocks():
    with pytest.raises(TypeError):
        VectorClock() < 3  # noqa: B015
    with pytest.raises(TypeError):
        VectorClock() <= {"phone": 1}  # noqa: B015
    assert VectorClock() != {}


def test_a_newer_write_replaces_what_it_has_seen_and_a_stale_one_is_ignored():
    replica = Replica()
    first = VectorClock().increment("phone")
    assert replica.apply(first, "10 km")
    assert replica.apply(first.increment("laptop"), "5 km")
    assert replica.values() == ["5 km"]
    assert not replica.apply(first, "10 km")  # redelivered after the newer write
    assert not replica.apply(first.increment("laptop"), "5 km")  # a plain duplicate
    assert replica.values() == ["5 km"]


def test_a_resolving_write_replaces_every_sibling_it_has_read():
    replica = Replica()
    base = VectorClock().increment("phone")
    replica.apply(base.increment("phone"), "12 km")
    replica.apply(base.increment("laptop"), "5 km")
    replica.apply(base.increment("watch"), "8 km")
    assert replica.values() == ["12 km", "5 km", "8 km"]
    replica.apply(replica.context().increment("laptop"), "8 km")
    assert replica.values() == ["8 km"]


@settings(max_examples=100, deadline=None)
@given(st.lists(clocks, max_size=8, unique=True), st.randoms(use_true_random=False))
def test_replicas_that_receive_the_same_writes_in_any_order_converge(writes, random):
    shuffled = list(writes)
    random.shuffle(shuffled)
    one, two = Replica(), Replica()
    for clock in writes:
        one.apply(clock, repr(clock))
    for clock in shuffled + writes:  # in another order, and every write twice
        two.apply(clock, repr(clock))
    maximal = {c for c in writes if not any(c < other for other in writes)}
    assert set(one.values()) == set(two.values()) == {repr(c) for c in maximal}
