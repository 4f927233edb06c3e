"""Sliding-window counter: the bounds it really gives, and an exact retry-after."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import replace
from itertools import accumulate

from hypothesis import given, target
from hypothesis import strategies as st

from ratekeeper.core import sliding_window as sw
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

from .strategies import THOROUGH, admitted, arrivals, drive, limits, settle, starts, times

sliding = limits(Algorithm.SLIDING_WINDOW, bursts=False)
MINUTE_10 = Limit(10, Unit.MINUTE, algorithm=Algorithm.SLIDING_WINDOW)
SECOND = NS_PER_SECOND


def test_previous_window_weighs_by_its_overlap() -> None:
    window = sw.new_window(MINUTE_10, 0)
    assert sw.count(window, MINUTE_10, 59 * SECOND, 10).allowed
    # Half-way into the next window the previous 10 weigh 5: five more fit, not six.
    assert sw.count(window, MINUTE_10, 90 * SECOND, 0) == Outcome(True, 5, 30 * SECOND, 0)
    assert not sw.count(window, MINUTE_10, 90 * SECOND, 6).allowed
    assert sw.count(window, MINUTE_10, 90 * SECOND, 5).allowed
    # 5 current + 10 × (60 - e) / 60 must drop to 9 before one more fits: e = 36 s.
    assert sw.count(window, MINUTE_10, 90 * SECOND, 0).retry_after_ns == 6 * SECOND
    assert not sw.count(window, MINUTE_10, 96 * SECOND - 1).allowed
    assert sw.count(window, MINUTE_10, 96 * SECOND).allowed


def test_only_admitted_hits_are_counted_but_debits_always_are() -> None:
    window = sw.new_window(MINUTE_10, 0)
    assert not sw.count(window, MINUTE_10, 0, 11).allowed
    assert window.current == 0
    sw.debit(window, MINUTE_10, 0, 15)
    assert window.current == 15
    outcome = sw.count(window, MINUTE_10, 0, 0)
    # 15 now weigh fully for the rest of this window, then decay over the next until 9 fit.
    assert outcome == Outcome(False, 0, 120 * SECOND, 60 * SECOND + 24 * SECOND)


def test_a_gap_of_two_windows_forgets_everything() -> None:
    window = sw.new_window(MINUTE_10, 0)
    sw.count(window, MINUTE_10, 0, 10)
    assert sw.count(window, MINUTE_10, 120 * SECOND, 0) == Outcome(True, 10, 0, 0)


def test_a_clock_stepping_back_keeps_the_counts() -> None:
    window = sw.new_window(MINUTE_10, 0)
    assert sw.count(window, MINUTE_10, 60 * SECOND, 10).allowed
    assert not sw.count(window, MINUTE_10, 60 * SECOND - 1).allowed
    assert (window.start_s, window.current) == (60, 10)


def test_limit_zero_never_admits() -> None:
    limit = Limit(0, algorithm=Algorithm.SLIDING_WINDOW)
    window = sw.new_window(limit, 0)
    assert sw.count(window, limit, 5) == Outcome(False, 0, 0, -1)


def _in_window(moments: list[int], totals: list[int], t: int, period: int) -> int:
    """Hits admitted at times in ``[t, t + period)``; ``totals`` are prefix sums."""
    lo = bisect.bisect_left(moments, t)
    hi = bisect.bisect_left(moments, t + period)
    return totals[hi] - totals[lo]


@THOROUGH
@given(st.data(), sliding)
def test_admitted_per_aligned_window_never_exceeds_the_limit(
    data: st.DataObject, limit: Limit
) -> None:
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit))
    per_window: Counter[int] = Counter()
    hits = admitted(sequence, drive(limit, start, sequence))
    for now, n in zip(times(start, sequence), hits, strict=True):
        per_window[now // limit.period_ns] += n
    assert all(total <= limit.amount for total in per_window.values())


@THOROUGH
@given(st.data(), sliding)
def test_any_window_of_one_period_admits_less_than_twice_the_limit(
    data: st.DataObject, limit: Limit
) -> None:
    """The provable bound for an arbitrary window ``[t, t + P)``, ``A`` the amount.

    Say ``t`` lies ``a`` ns into the aligned window ``W`` (``0 <= a < P``) and ``W`` admitted
    ``c <= A`` hits. The window sees at most ``c`` hits of ``W``, and the hits of the next
    aligned window before elapsed ``a``; the last of those batches, at elapsed ``e < a``, was
    admitted only if ``c (P - e) / P + y <= A``, ``y`` the next window's hits so far. So the
    window admits at most ``c + A - c (P - e) / P = A + c e / P < A + A a / P``, that is

        ``admitted <= A + floor(A * a / P)``  and so  ``admitted <= 2A - 1``  (``A >= 1``).

    It is attained: ``A`` hits just before an aligned boundary, then ``A - 1`` more just before
    one period after them (see :func:`test_twice_the_limit_minus_one_is_attained`).
    """
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit, min_size=8))
    moments = times(start, sequence)
    totals = [0, *accumulate(admitted(sequence, drive(limit, start, sequence)))]
    period = limit.period_ns
    # The count only changes when t passes a hit or t + P reaches one; the bound only drops at
    # an aligned start. The smallest t of each stretch is the tightest check of it.
    candidates = set(moments) | {m - period + 1 for m in moments}
    candidates |= {m - m % period for m in moments}
    slack = []
    for t in candidates:
        seen = _in_window(moments, totals, t, period)
        assert seen <= max(0, 2 * limit.amount - 1)
        slack.append(limit.amount + limit.amount * (t % period) // period - seen)
    assert min(slack, default=0) >= 0
    target(-min(slack, default=0) / max(1, limit.amount))  # steer towards windows near the bound


def test_twice_the_limit_minus_one_is_attained() -> None:
    limit = MINUTE_10
    period = limit.period_ns
    window = sw.new_window(limit, 0)
    t = period - 1  # the window [t, t + P) starts 1 ns before the boundary
    assert sw.count(window, limit, t, 10).allowed
    assert sw.count(window, limit, t + period - 1, 9).allowed
    assert not sw.count(window, limit, t + period - 1, 1).allowed


@THOROUGH
@given(st.data(), sliding)
def test_retry_after_is_exact(data: st.DataObject, limit: Limit) -> None:
    """At ``now + retry_after`` one hit is admitted; one ns earlier it is not."""
    window, now = settle(data, limit)
    now += data.draw(st.integers(0, limit.period_ns))
    retry = sw.count(replace(window), limit, now, 0).retry_after_ns
    if limit.amount == 0:
        assert retry == -1
        return
    assert retry >= 0
    assert sw.count(replace(window), limit, now + retry).allowed
    if retry > 0:
        assert not sw.count(replace(window), limit, now + retry - 1).allowed


@THOROUGH
@given(st.data(), sliding.filter(lambda limit: limit.amount > 0))
def test_reset_after_is_when_the_whole_limit_fits_again(data: st.DataObject, limit: Limit) -> None:
    window, now = settle(data, limit)
    reset = sw.count(replace(window), limit, now, 0).reset_after_ns
    assert sw.count(replace(window), limit, now + reset, 0).remaining == limit.amount
    if reset > 0:
        assert sw.count(replace(window), limit, now + reset - 1, 0).remaining < limit.amount
