"""envoyproxy/ratelimit's fixed window, to the letter."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core import fixed_window as fw
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

from .strategies import THOROUGH, admitted, arrivals, drive, limits, starts, times

windows = limits(Algorithm.FIXED_WINDOW, bursts=False)
MINUTE_20 = Limit(20, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)
#: 1234.5 s after the epoch: the minute window [1200 s, 1260 s), 26 s to its reset.
AT = 1_234_500_000_000


@pytest.mark.parametrize("stop_when_over", [False, True])
def test_twenty_per_minute_twenty_five_hits(stop_when_over: bool) -> None:
    """The reference integration test: 20/minute, 25 hits; hit 21 onward is over the limit."""
    window = fw.new_window(MINUTE_20, AT)
    for n in range(1, 26):
        outcome = fw.count(window, MINUTE_20, AT, stop_when_over=stop_when_over)
        assert outcome.allowed == (n <= 20)
        assert outcome.remaining == max(0, 20 - n)
        assert outcome.reset_after_ns == 25_500_000_000
        assert outcome.retry_after_ns == (25_500_000_000 if n >= 20 else 0)
    assert window.count == (20 if stop_when_over else 25)
    assert fw.reset_after_s(MINUTE_20, AT) == 26


@pytest.mark.parametrize(
    ("count_before", "hits", "stop_when_over", "allowed", "remaining", "count_after"),
    [
        (0, 1, False, True, 19, 1),
        (19, 1, False, True, 0, 20),
        (18, 3, False, False, 0, 21),  # a batch over the limit is counted anyway
        (18, 3, True, False, 0, 18),  # ... unless the stop-increment option is on
        (18, 2, True, True, 0, 20),
        (25, 0, False, False, 0, 25),  # a check of a counter already over
        (5, 0, False, True, 15, 5),  # hits_addend 0: check without counting
        (20, 0, False, True, 0, 20),  # after == limit is within it
    ],
)
def test_batch_cases(
    count_before: int,
    hits: int,
    stop_when_over: bool,
    allowed: bool,
    remaining: int,
    count_after: int,
) -> None:
    window = fw.new_window(MINUTE_20, AT)
    window.count = count_before
    outcome = fw.count(window, MINUTE_20, AT, hits, stop_when_over=stop_when_over)
    assert (outcome.allowed, outcome.remaining, window.count) == (allowed, remaining, count_after)


def test_refused_batch_under_stop_when_over_leaves_room_to_retry_now() -> None:
    """A batch of 3 refused with 2 left does not make one more hit wait for the reset."""
    window = fw.new_window(MINUTE_20, AT)
    window.count = 18
    assert fw.count(window, MINUTE_20, AT, 3, stop_when_over=True).retry_after_ns == 0
    assert fw.count(window, MINUTE_20, AT, 1).allowed


def test_limit_zero_blocks_every_hit_forever() -> None:
    """``requests_per_unit: 0``: over on every hit, and no reset ever lets one through."""
    limit = Limit(0, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW)
    window = fw.new_window(limit, AT)
    # A check of the empty counter is within the limit (0 > 0 is false), but nothing fits.
    assert fw.count(window, limit, AT, 0) == Outcome(True, 0, 500_000_000, -1)
    assert fw.count(window, limit, AT) == Outcome(False, 0, 500_000_000, -1)
    assert fw.count(window, limit, AT + 7 * NS_PER_SECOND).retry_after_ns == -1


@pytest.mark.parametrize(
    ("limit", "now_s", "start_s"),
    [
        # The reference's hour-window cache key suffix 997200.
        (Limit(10, Unit.HOUR), 997_200, 997_200),
        (Limit(10, Unit.HOUR), 1_000_799, 997_200),
        (Limit(10, Unit.HOUR), 1_000_800, 1_000_800),
        (Limit(10, Unit.MINUTE, 5), 1_234, 1_200),
        (Limit(10, Unit.DAY), 1_763_712_345, 1_763_683_200),  # UTC midnight
        (Limit(10, Unit.WEEK), 1_000_000, 604_800),  # weeks from the epoch (a Thursday)
        (Limit(10, Unit.MONTH), 2_600_000, 2_592_000),  # 30-day months
        (Limit(10, Unit.YEAR), 31_536_000 * 2 + 5, 31_536_000 * 2),  # 365-day years
    ],
)
def test_windows_are_epoch_aligned(limit: Limit, now_s: int, start_s: int) -> None:
    for now in (now_s * NS_PER_SECOND, now_s * NS_PER_SECOND + NS_PER_SECOND - 1):
        assert fw.window_start(limit, now) == start_s
        assert fw.new_window(limit, now).start_s == start_s
        assert fw.reset_after_s(limit, now) == limit.period_s - now_s % limit.period_s


def test_window_rolls_over_at_the_boundary() -> None:
    limit = Limit(2, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW)
    window = fw.new_window(limit, 0)
    assert fw.count(window, limit, NS_PER_SECOND - 1, 2).allowed
    assert not fw.count(window, limit, NS_PER_SECOND - 1).allowed
    assert fw.count(window, limit, NS_PER_SECOND) == Outcome(True, 1, NS_PER_SECOND, 0)


def test_a_clock_stepping_back_keeps_the_count() -> None:
    limit = Limit(2, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW)
    window = fw.new_window(limit, 0)
    assert fw.count(window, limit, NS_PER_SECOND, 2).allowed
    # 1 ns back, into the window before: counted in the newer window, and over.
    assert not fw.count(window, limit, NS_PER_SECOND - 1).allowed
    assert (window.start_s, window.count) == (1, 3)
    assert not fw.count(window, limit, NS_PER_SECOND).allowed


def test_duration_until_reset_counts_down() -> None:
    assert [fw.reset_after_s(MINUTE_20, (1200 + s) * NS_PER_SECOND) for s in (0, 1, 58, 59)] == [
        60,
        59,
        2,
        1,
    ]


def test_debit_counts_past_the_limit() -> None:
    window = fw.new_window(MINUTE_20, AT)
    fw.debit(window, MINUTE_20, AT, 30)
    assert window.count == 30
    assert fw.count(window, MINUTE_20, AT, 0) == Outcome(False, 0, 25_500_000_000, 25_500_000_000)
    fw.debit(window, MINUTE_20, AT + 60 * NS_PER_SECOND, 4)
    assert window.count == 4  # a new window starts from zero


def _reference(limit: Limit, counters: Counter[int], now: int, hits: int, stop: bool) -> Outcome:
    """The reference service's arithmetic, keyed by window like its Redis cache keys."""
    now_s = now // NS_PER_SECOND
    key = now_s // limit.period_s
    after = counters[key] + hits
    over = after > limit.amount
    if not (over and stop):
        counters[key] = after
    reset_ns = (key + 1) * limit.period_ns - now
    left = counters[key] < limit.amount
    return Outcome(
        allowed=not over,
        remaining=0 if over else limit.amount - after,
        reset_after_ns=reset_ns,
        retry_after_ns=0 if left else (reset_ns if limit.amount else -1),
    )


@THOROUGH
@given(st.data(), windows, st.booleans())
def test_matches_the_reference_semantics(data: st.DataObject, limit: Limit, stop: bool) -> None:
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit, reports=True))
    window = fw.new_window(limit, start)
    counters: Counter[int] = Counter()
    for arrival, now in zip(sequence, times(start, sequence), strict=True):
        if arrival.reported:
            fw.debit(window, limit, now, arrival.hits)
            counters[now // limit.period_ns] += arrival.hits
            continue
        outcome = fw.count(window, limit, now, arrival.hits, stop_when_over=stop)
        assert outcome == _reference(limit, counters, now, arrival.hits, stop)
        assert fw.reset_after_s(limit, now) == math.ceil(outcome.reset_after_ns / NS_PER_SECOND)


@THOROUGH
@given(st.data(), windows)
def test_admitted_per_window_never_exceeds_the_limit(data: st.DataObject, limit: Limit) -> None:
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit))
    per_window: Counter[int] = Counter()
    hits = admitted(sequence, drive(limit, start, sequence))
    for now, n in zip(times(start, sequence), hits, strict=True):
        per_window[fw.window_start(limit, now)] += n
    assert all(total <= limit.amount for total in per_window.values())
