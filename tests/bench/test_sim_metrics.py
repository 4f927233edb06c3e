"""The simulator's figures: sliding windows, the ideal bucket, false rejections, percentiles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.sim.metrics import (
    allowance,
    counter_increase,
    counter_rate,
    false_rejections,
    ideal_admits,
    key_figures,
    overshoot,
    percentiles,
    worst_window,
)
from ratekeeper.core import token_bucket
from ratekeeper.core.limits import NS_PER_SECOND, Limit

FAST = settings(max_examples=60, deadline=None)

times_ns = st.lists(st.integers(0, 5 * NS_PER_SECOND), max_size=200).map(
    lambda ts: np.array(sorted(ts), dtype=np.int64)
)
limits = st.builds(Limit, amount=st.integers(1, 50), burst=st.one_of(st.none(), st.integers(1, 80)))


@FAST
@given(times_ns, st.integers(1, 2 * NS_PER_SECOND))
def test_worst_window_matches_brute_force(times: np.ndarray, window: int) -> None:
    brute = max((int(((times >= t) & (times < t + window)).sum()) for t in times), default=0)
    assert worst_window(times, window) == brute


@FAST
@given(times_ns, limits)
def test_an_exact_bucket_never_exceeds_the_policy(times: np.ndarray, limit: Limit) -> None:
    span = int(times[-1]) if times.size else 0
    assert ideal_admits(times, limit) <= allowance(limit, span)


@FAST
@given(times_ns, limits)
def test_exact_bucket_decisions_have_no_false_rejections(times: np.ndarray, limit: Limit) -> None:
    bucket = token_bucket.new_bucket(limit, 0)
    admitted = np.array([token_bucket.take(bucket, limit, int(t)).allowed for t in times], bool)
    assert false_rejections(times, admitted, limit) == 0


@FAST
@given(times_ns, limits)
def test_rejecting_everything_is_false_while_tokens_remain(times: np.ndarray, limit: Limit) -> None:
    rejected = np.zeros(times.size, bool)
    # Nothing is ever admitted, so the bucket stays full: every rejection is false.
    assert false_rejections(times, rejected, limit) == times.size


@FAST
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=300))
def test_percentiles_are_ordered_observed_values(values: list[float]) -> None:
    p50, p99, p999 = percentiles(values, (0.5, 0.99, 0.999))
    assert min(values) <= p50 <= p99 <= p999 <= max(values)
    assert {p50, p99, p999} <= set(values)


def test_overshoot_is_the_excess_fraction() -> None:
    assert overshoot(105, 100) == 0.050000000000000044
    assert overshoot(90, 100) == 0.0


def test_allowance_is_rate_times_window_plus_burst() -> None:
    assert allowance(Limit(50, burst=10), NS_PER_SECOND) == 60
    assert allowance(Limit(50), 2 * NS_PER_SECOND) == 150


def test_counter_rate_uses_samples_inside_the_interval() -> None:
    series = [(0.0, 0.0), (1.0, 10.0), (2.0, 20.0), (3.0, 120.0)]
    assert counter_rate(series, 0.0, 2.0) == 10.0
    assert counter_rate(series, 2.0, 3.0) == 100.0
    assert np.isnan(counter_rate(series, 5.0, 6.0))


def test_counter_increase_survives_a_restart() -> None:
    assert counter_increase([3.0, 5.0, 9.0]) == 6.0
    assert counter_increase([3.0, 5.0, 1.0, 4.0]) == 2.0 + 1.0 + 3.0
    assert counter_increase([7.0]) == 0.0


def test_a_key_under_its_limit_is_one_an_exact_bucket_admits_in_full() -> None:
    limit = Limit(10)
    slow = np.arange(0, 5 * NS_PER_SECOND, NS_PER_SECOND // 5, dtype=np.int64)  # 5/s
    fast = np.arange(0, 5 * NS_PER_SECOND, NS_PER_SECOND // 50, dtype=np.int64)  # 50/s
    assert key_figures(slow, np.ones(slow.size, bool), limit, 5 * NS_PER_SECOND).under_limit
    assert not key_figures(fast, np.ones(fast.size, bool), limit, 5 * NS_PER_SECOND).under_limit


def test_key_figures_of_the_fixed_window_boundary_exploit() -> None:
    # 50 hits in the 100 ms before a second boundary and 50 after: a fixed window of 50/s
    # admits all 100, which is r·1s + b; the peak 1-s window is twice the rate.
    limit = Limit(50)
    times = (
        np.concatenate([np.linspace(0.9, 0.999, 50), np.linspace(1.0, 1.099, 50)]) * NS_PER_SECOND
    )
    times = times.astype(np.int64)
    figures = key_figures(times, np.ones(100, bool), limit, 2 * NS_PER_SECOND)
    assert figures.window_overshoot == 0.0
    assert figures.peak_window_ratio == 2.0
    assert figures.ideal == 59  # the bucket's 50, plus ~0.2 s of refill across the burst
    assert figures.false_rejections == 0
