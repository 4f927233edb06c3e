"""The member's passive side of the cluster: its slice view (ownership, load) and its heartbeat
machine, driven by hand-chosen times."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.core.assignment import pieces
from ratekeeper.core.assignment_diff import AssignmentDiff, diff
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split
from ratekeeper.protocol.ownership import MeteredOwnership
from ratekeeper.server.membership import (
    Beat,
    Change,
    Event,
    Membership,
    MembershipTiming,
    State,
    fallback_target,
)
from ratekeeper.server.slice_view import MIN_REPORTED_RATE, SliceView

MS = NS_PER_SECOND // 1000
ME = "10.0.0.1:8081"
HALF = HASH_SPACE // 2
G1, G2, G3 = Generation(1, 1), Generation(1, 2), Generation(1, 3)
TWO = Assignment(G1, (0, HALF), (ME, "other:1"))
TIMING = MembershipTiming(
    interval_ns=1000 * MS, retry_initial_ns=100 * MS, retry_max_ns=800 * MS, warn_every_ns=5000 * MS
)

cut_points = st.integers(1, 15).map(lambda i: i * (HASH_SPACE // 16)) | st.integers(
    1, HASH_SPACE - 1
)


@st.composite
def assignments(draw: st.DrawFn) -> Assignment:
    """A few slices owned by this member and two others."""
    cuts = draw(st.lists(cut_points, max_size=8, unique=True))
    starts = (0, *sorted(cuts))
    owners = draw(st.lists(st.sampled_from((ME, "b:1", "c:1")), min_size=len(starts),
                           max_size=len(starts)))  # fmt: skip
    return Assignment(Generation(1, draw(st.integers(1, 100))), starts, tuple(owners))


hashes = st.integers(0, HASH_SPACE - 1)
ORDER = [State.NOT_READY, State.RUNNING, State.TERMINATING]


# --- the view ------------------------------------------------------------------------------


def test_before_any_assignment_the_view_owns_everything_and_measures_nothing() -> None:
    view = SliceView(ME)
    assert isinstance(view, MeteredOwnership)
    assert view.owns(0)
    assert view.owns(HASH_SPACE - 1)
    assert view.charge(123, 5)
    assert view.generation is None
    assert view.take_load(NS_PER_SECOND) == ()
    assert view.update_for(None) is None


@settings(max_examples=100, deadline=None)
@given(assignments(), st.lists(hashes, max_size=20))
def test_the_view_owns_exactly_what_the_assignment_gives_this_member(
    assignment: Assignment, keys: list[int]
) -> None:
    view = SliceView(ME)
    view.hold(assignment, 0)
    for key in [*keys, 0, HASH_SPACE - 1, *assignment.starts]:
        assert view.owns(key) == (assignment.owner_of(key) == ME)
        assert view.charge(key, 1) == view.owns(key)
    assert view.owned() == assignment.slices_of(ME)


def by_slice(load: tuple[tuple[Slice, float], ...]) -> dict[Slice, float]:
    return dict(load)


@settings(max_examples=100, deadline=None)
@given(assignments(), st.lists(st.tuples(hashes, st.integers(0, 50)), max_size=30))
def test_with_no_averaging_load_is_the_hits_of_each_slice_per_second(
    assignment: Assignment, hits: list[tuple[int, int]]
) -> None:
    view = SliceView(ME, window_ns=1)  # a window far below the interval: the last one alone
    view.hold(assignment, 0)
    for key, n in hits:
        view.charge(key, n)
    load = by_slice(view.take_load(2 * NS_PER_SECOND))  # over two seconds
    for piece, owner in pieces(assignment):
        rate = sum(n for key, n in hits if key in piece) / 2
        if owner == ME:
            assert load[piece] == rate
        elif rate:
            assert load[piece] == rate  # misdirected hits are load here too
        else:
            assert piece not in load  # others' quiet slices are not reported


def test_a_steady_rate_is_measured_as_it_is_and_a_stop_decays_with_the_window() -> None:
    view = SliceView(ME, window_ns=2 * NS_PER_SECOND)
    view.hold(Assignment(G1, (0,), (ME,)), 0)
    tick = NS_PER_SECOND // 10
    for step in range(1, 301):  # 100 hits/s for 30 s, folded every 100 ms
        view.charge(0, 10)
        ((_, rate),) = view.take_load(step * tick)
    assert rate == pytest.approx(100.0, rel=1e-6)
    ((_, rate),) = view.take_load(30 * NS_PER_SECOND + 2 * NS_PER_SECOND)
    assert rate == pytest.approx(100.0 * math.exp(-1), rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    assignments(),
    st.lists(st.lists(st.tuples(hashes, st.integers(0, 50), st.booleans()), max_size=8),
             min_size=1, max_size=8),
)  # fmt: skip
def test_what_two_members_report_adds_up_to_the_load_wherever_hits_land(
    assignment: Assignment, rounds: list[list[tuple[int, int, bool]]]
) -> None:
    """Hits split between the owner and a member a client misroutes to: the assigner's sum of
    both reports per slice is what one member seeing every hit would report."""
    mine, other, whole = SliceView(ME), SliceView("b:1"), SliceView("all:1")
    for view in (mine, other, whole):
        view.hold(assignment, 0)
    for step, hits in enumerate(rounds, start=1):
        for key, n, misrouted in hits:
            (other if misrouted else mine).charge(key, n)
            whole.charge(key, n)
        now = step * NS_PER_SECOND
        total: dict[Slice, float] = {}
        for part in (mine.take_load(now), other.take_load(now)):
            for piece, rate in part:
                total[piece] = total.get(piece, 0.0) + rate
        # ``whole`` owns nothing: it reports every slice it saw hits on
        for piece, rate in whole.take_load(now):
            assert total.get(piece, 0.0) == pytest.approx(rate, abs=2 * MIN_REPORTED_RATE)


def test_a_new_assignment_keeps_what_was_measured_by_overlap_width() -> None:
    view = SliceView(ME, window_ns=1)  # no averaging: rates are the last interval's
    quarter, eighth = HASH_SPACE // 4, HASH_SPACE // 8
    view.hold(Assignment(G1, (0, quarter, HALF), (ME, ME, "b:1")), 0)
    view.charge(0, 30)
    view.charge(quarter, 10)
    view.charge(HALF, 4)  # misdirected
    after = Assignment(G2, (0, eighth, HALF), (ME, ME, ME))  # a split, a merge and a gain
    view.hold(after, NS_PER_SECOND)  # folds the second before, then carries
    assert by_slice(view.take_load(NS_PER_SECOND)) == {  # no time since: as carried
        Slice(0, eighth): 15.0,  # half of the first
        Slice(eighth, HALF): 25.0,  # its other half, and the second
        Slice(HALF, HASH_SPACE): 4.0,  # gained: the misdirected hits seen on it
    }


def test_binding_renames_the_member() -> None:
    view = SliceView()
    view.hold(TWO, 0)
    assert not view.owns(0)  # not named yet: owns nothing of an assignment
    view.bind(ME)
    assert view.owns(0)
    assert not view.owns(HALF)
    after = Assignment(G2, (0,), (ME,))
    assert view.hold(after, NS_PER_SECOND) is TWO
    assert view.owns(HALF)
    assert [piece for piece, _ in view.take_load(2 * NS_PER_SECOND)] == [Slice(0, HASH_SPACE)]


def test_callers_behind_get_a_diff_from_a_recent_generation_else_the_whole() -> None:
    view = SliceView(ME, history=2)
    a1 = even_split([ME, "b:1", "c:1", "d:1"], G1)
    a2 = Assignment(G2, a1.starts, (ME, "b:1", "c:1", "b:1"))
    a3 = Assignment(G3, a1.starts, (ME, "b:1", ME, "b:1"))
    for i, a in enumerate((a1, a2, a3)):
        view.hold(a, i)
    assert view.update_for(G3) is None
    assert view.update_for(Generation(2, 0)) is None  # ahead of us: nothing to teach
    assert view.update_for(G2) == diff(a2, a3)
    assert view.update_for(G1) is a3  # forgotten (history of 2): the whole
    assert view.update_for(None) is a3


# --- the machine ---------------------------------------------------------------------------


def machine(now: int = 0) -> Membership:
    return Membership(SliceView(ME), TIMING, now)


def test_a_new_member_beats_at_once_not_ready_and_claims_no_generation() -> None:
    m = machine()
    assert m.due(0) == Beat(State.NOT_READY, None, ())
    assert m.due(0) is None  # one in flight at a time


def test_serving_and_draining_follow_the_table_and_beat_at_once() -> None:
    m = machine()
    m.due(0)
    m.answered(0, None)
    assert m.next_at == 1000 * MS
    assert m.on(Event.SERVING, 10 * MS)
    assert m.state is State.RUNNING
    beat = m.due(10 * MS)
    assert beat is not None
    assert beat.state is State.RUNNING
    assert not m.on(Event.SERVING, 20 * MS)  # no change, no early beat
    m.answered(20 * MS, None)
    assert m.due(30 * MS) is None
    assert m.on(Event.DRAINING, 40 * MS)
    assert m.state is State.TERMINATING
    assert not m.on(Event.SERVING, 50 * MS)  # a draining member never serves again
    assert m.state is State.TERMINATING


def test_a_state_change_while_a_beat_is_in_flight_beats_again_once_it_is_answered() -> None:
    m = machine()
    m.due(0)
    m.on(Event.SERVING, 5 * MS)
    assert m.due(5 * MS) is None
    m.answered(10 * MS, None)
    beat = m.due(10 * MS)
    assert beat is not None
    assert beat.state is State.RUNNING


def test_the_assigners_interval_is_followed_once_said() -> None:
    m = machine()
    m.due(0)
    m.answered(0, TWO, interval_ns=300 * MS)
    assert m.interval_ns == 300 * MS
    assert m.due(299 * MS) is None
    beat = m.due(300 * MS)
    assert beat is not None
    assert beat.known == G1


def test_an_update_is_adopted_and_announced_once() -> None:
    m = machine()
    m.due(0)
    change = m.answered(0, TWO)
    assert change == Change(None, TWO)
    assert m.view.assignment is TWO
    assert m.offer(TWO, 1) is None  # the same again: nothing to announce
    after = Assignment(G2, (0, HALF), ("other:1", ME))
    assert m.offer(diff(TWO, after), 2) == Change(TWO, after)
    assert m.offer(TWO, 3) is None  # stale: never rolled back
    assert m.view.assignment == after


def test_a_diff_that_does_not_fit_asks_for_the_whole_at_once() -> None:
    m = machine()
    m.due(0)
    m.answered(0, TWO)
    stray = AssignmentDiff(Generation(9, 9), Generation(9, 10), ())
    assert m.offer(stray, 10 * MS) is None
    assert m.view.assignment is TWO
    beat = m.due(10 * MS)
    assert beat is not None
    assert beat.known is None
    whole = Assignment(Generation(9, 10), (0,), (ME,))
    assert m.answered(20 * MS, whole) == Change(TWO, whole)
    beat = m.due(1020 * MS)
    assert beat is not None
    assert beat.known == whole.generation


def test_failures_back_off_doubling_to_the_cap_and_warn_rate_limited() -> None:
    m = machine()
    m.due(0)
    m.answered(0, TWO)
    now, delays, warnings = 0, [], []
    for _ in range(40):
        now = m.next_at
        assert m.due(now) is not None
        failure = m.failed(now)
        delays.append(failure.delay_ns // MS)
        warnings.append(failure.warn)
    assert delays[:5] == [100, 200, 400, 800, 800]
    assert max(delays) == 800
    assert m.view.assignment is TWO  # kept while the assigner is away
    warned_at = [i for i, warn in enumerate(warnings) if warn]
    assert warned_at[0] == 0
    assert len(warned_at) <= 1 + (sum(delays) * MS) // TIMING.warn_every_ns
    m.due(m.next_at)
    m.answered(m.next_at, None)
    assert m.failures == 0
    m.due(m.next_at)
    assert m.failed(m.next_at).warn  # a new outage warns at once


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["tick", "ok", "fail", "serve", "drain"]), st.integers(0, 900)),
        max_size=60,
    )
)
def test_one_beat_in_flight_states_only_advance_and_each_beat_tells_the_latest_state(
    steps: list[tuple[str, int]],
) -> None:
    m = machine()
    now, in_flight, last_answer, changed_since = 0, False, None, False
    for step, ms in steps:
        now += ms * MS
        before = m.state
        if step == "serve":
            m.on(Event.SERVING, now)
        elif step == "drain":
            m.on(Event.DRAINING, now)
        elif step == "ok" and in_flight:
            m.answered(now, None)
            in_flight, last_answer = False, now
        elif step == "fail" and in_flight:
            assert TIMING.retry_initial_ns <= m.failed(now).delay_ns <= TIMING.retry_max_ns
            in_flight, last_answer = False, None
        assert ORDER.index(m.state) >= ORDER.index(before)
        if m.state != before:
            changed_since = True
        beat = m.due(now)
        if in_flight:
            assert beat is None
        elif beat is not None:
            assert beat.state is m.state
            if last_answer is not None and not changed_since:
                assert now - last_answer >= TIMING.interval_ns
            in_flight, changed_since = True, False


@pytest.mark.parametrize("failures", [1, 2, 3, 10, 100])
def test_backoff_is_capped(failures: int) -> None:
    assert TIMING.retry_initial_ns <= TIMING.backoff(failures) <= TIMING.retry_max_ns


def test_pieces_and_load_agree_on_slice_order() -> None:
    view = SliceView(ME)
    a = Assignment(G1, (0, HALF // 2, HALF), (ME, "b:1", ME))
    view.hold(a, 0)
    assert [p for p, _ in view.take_load(NS_PER_SECOND)] == [
        p for p, owner in pieces(a) if owner == ME
    ]


@pytest.mark.parametrize(
    ("after", "expected"), [(1, [True] * 5), (3, [False, False, True, False, False])]
)
def test_after_enough_failures_in_a_row_the_next_target_is_tried(
    after: int, expected: list[bool]
) -> None:
    m = Membership(SliceView(ME), dataclasses.replace(TIMING, switch_after=after), 0)
    m.due(0)
    switches = []
    for _ in range(5):
        m.due(m.next_at)
        switches.append(m.failed(m.next_at).switch)
    assert switches == expected


def test_fallback_targets_cycle_through_the_join_address_and_the_other_members() -> None:
    held = Assignment(G1, (0, HALF // 2, HALF), (ME, "b:1", "c:1"))
    cycle = ["join:1"]
    for _ in range(4):
        cycle.append(fallback_target(["join:1"], cycle[-1], held, ME))
    assert cycle == ["join:1", "b:1", "c:1", "join:1", "b:1"]
    assert fallback_target(["b:1"], "b:1", held, ME) == "c:1"  # joined through a member
    assert fallback_target(["join:1"], "join:1", None, ME) == "join:1"  # nobody else known
    # several assigners given: each in turn, then the members
    joins = ["x:1", "y:1", "b:1"]
    assert fallback_target(joins, "x:1", held, ME) == "y:1"
    assert fallback_target(joins, "y:1", held, ME) == "b:1"
    assert fallback_target(joins, "b:1", held, ME) == "c:1"
    assert fallback_target(joins, "c:1", held, ME) == "x:1"


def test_the_backoff_doubles_once_per_round_of_the_targets() -> None:
    m = machine()
    m.due(0)
    delays = []
    for _ in range(9):
        m.due(m.next_at)
        delays.append(m.failed(m.next_at, targets=3).delay_ns // MS)
    assert delays == [100, 100, 100, 200, 200, 200, 400, 400, 400]


def test_several_join_addresses_are_tried_in_turn_before_the_members() -> None:
    held = Assignment(G1, (0, HALF), (ME, "b:1"))
    joins = ("a1:1", "a2:1")
    cycle = ["a1:1"]
    for _ in range(3):
        cycle.append(fallback_target(joins, cycle[-1], held, ME))
    assert cycle == ["a1:1", "a2:1", "b:1", "a1:1"]
