"""Arrival processes: in range, sorted, at their stated mean rate, reproducible from a seed."""

from __future__ import annotations

import random

import pytest

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.testing.model.arrivals import Arrivals, OnOff, Poisson, Steady, Step

END = 100 * NS_PER_SECOND


@pytest.mark.parametrize(
    "process", [Steady(10.0), Poisson(10.0), OnOff(20.0, 1.0, 1.0), Step(2.0, 18.0, 50.0)]
)
def test_times_are_sorted_in_range_and_at_the_mean_rate(process: Arrivals) -> None:
    times = list(process.times(random.Random(1), END))
    assert times == sorted(times)
    assert all(0 <= t < END for t in times)
    expected = process.mean_rate(100.0) * 100.0
    assert abs(len(times) - expected) < 4 * expected**0.5 + 2


def test_the_same_seed_draws_the_same_times() -> None:
    a = list(Poisson(3.0).times(random.Random(5), END))
    b = list(Poisson(3.0).times(random.Random(5), END))
    assert a == b != list(Poisson(3.0).times(random.Random(6), END))


def test_a_step_is_silent_before_it_from_zero() -> None:
    times = list(Step(0.0, 50.0, 2.0).times(random.Random(1), 4 * NS_PER_SECOND))
    assert times
    assert min(times) >= 2 * NS_PER_SECOND
