"""Token bucket with debt: exact bounds, exact debt repayment, an exact rational reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core import token_bucket as tb
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

from .strategies import (
    FAST,
    FIFTY_YEARS_NS,
    ONE_YEAR_NS,
    THOROUGH,
    TODAY_NS,
    Arrival,
    admitted,
    arrivals,
    drive,
    limits,
    settle,
    starts,
    times,
)

buckets = limits(Algorithm.TOKEN_BUCKET)
T0 = TODAY_NS


def test_new_bucket_is_full_and_drains_then_refills() -> None:
    limit = Limit(10, Unit.SECOND, burst=20)
    bucket = tb.new_bucket(limit, T0)
    assert tb.available(bucket, limit) == 20
    assert tb.take(bucket, limit, T0, 20) == Outcome(True, 0, 2 * NS_PER_SECOND, 100_000_000)
    assert not tb.take(bucket, limit, T0).allowed
    # One token every 100 ms, to the nanosecond.
    assert not tb.take(bucket, limit, T0 + 99_999_999).allowed
    assert tb.take(bucket, limit, T0 + 100_000_000).allowed


def test_refill_stops_at_capacity() -> None:
    limit = Limit(5, Unit.MINUTE)
    bucket = tb.new_bucket(limit, T0)
    tb.refill(bucket, limit, T0 + 10 * limit.period_ns)
    assert tb.available(bucket, limit) == 5
    assert tb.take(bucket, limit, T0 + 10 * limit.period_ns, 5).allowed
    assert not tb.take(bucket, limit, T0 + 10 * limit.period_ns, 1).allowed


def test_refused_take_takes_nothing_and_zero_hits_only_checks() -> None:
    limit = Limit(3)
    bucket = tb.new_bucket(limit, T0)
    assert not tb.take(bucket, limit, T0, 4).allowed
    assert tb.take(bucket, limit, T0, 0) == Outcome(True, 3, 0, 0)
    assert tb.take(bucket, limit, T0, 3).allowed


def test_clock_stepping_back_refills_nothing() -> None:
    limit = Limit(1)
    bucket = tb.new_bucket(limit, T0)
    tb.take(bucket, limit, T0)
    before = replace(bucket)
    tb.refill(bucket, limit, T0 - NS_PER_SECOND)
    assert bucket == before
    assert not tb.take(bucket, limit, T0 - NS_PER_SECOND).allowed


def test_debit_goes_into_debt_and_instructs_the_wait() -> None:
    limit = Limit(10, Unit.SECOND)
    bucket = tb.new_bucket(limit, T0)
    tb.debit(bucket, limit, T0, 25)  # 15 hits past empty
    assert tb.available(bucket, limit) == -15
    outcome = tb.take(bucket, limit, T0, 0)
    assert outcome == Outcome(False, 0, 2_500_000_000, 1_600_000_000)
    assert not tb.take(bucket, limit, T0 + 1_599_999_999).allowed
    assert tb.take(bucket, limit, T0 + 1_600_000_000).allowed


def test_a_debit_carries_the_debt_it_is_allowed_beyond_the_horizon() -> None:
    """``debt`` tokens deeper than the horizon are carried, no deeper (issue 11: a fleet's
    first round of optimism is charged back, not forgiven)."""
    limit = Limit(1, Unit.SECOND)
    capped, carried = tb.new_bucket(limit, T0), tb.new_bucket(limit, T0)
    tb.debit(capped, limit, T0, 10)
    tb.debit(carried, limit, T0, 10, debt=5)
    assert tb.available(capped, limit) == -tb.DEBT_HORIZON_PERIODS
    assert tb.available(carried, limit) == -5
    tb.debit(carried, limit, T0, 100, debt=5)
    assert tb.available(carried, limit) == -5
    assert tb.debt_floor(limit, 1) == -tb.DEBT_HORIZON_PERIODS * limit.period_ns


@pytest.mark.parametrize(
    ("limit", "tokens", "expected"),
    [
        (Limit(10), 10, 0),  # already there
        (Limit(10), 0, 0),
        (Limit(10), 11, -1),  # above capacity: never
        (Limit(10, burst=20), 11, 0),
        (Limit(0, burst=5), 6, -1),
        (Limit(0), 1, -1),  # nothing ever refills
    ],
)
def test_ns_until_on_a_full_bucket(limit: Limit, tokens: int, expected: int) -> None:
    assert tb.ns_until(tb.new_bucket(limit, T0), limit, tokens) == expected


def test_amount_zero_never_admits() -> None:
    limit = Limit(0)
    bucket = tb.new_bucket(limit, T0)
    assert tb.take(bucket, limit, T0 + FIFTY_YEARS_NS) == Outcome(False, 0, 0, -1)


def _interval_sums(moments: list[int], hits: list[int]) -> list[tuple[int, int, int]]:
    """``(t0, t1, admitted in [t0, t1])`` for every pair of call times."""
    out = []
    for i, t0 in enumerate(moments):
        total = 0
        for j in range(i, len(moments)):
            total += hits[j]
            if j + 1 == len(moments) or moments[j + 1] != moments[j]:
                out.append((t0, moments[j], total))
    return out


@THOROUGH
@given(st.data(), buckets, starts())
def test_admitted_in_any_interval_is_bounded(data: st.DataObject, limit: Limit, start: int) -> None:
    """Hits admitted at times in ``[t0, t1]`` never exceed
    ``floor(amount * (t1 - t0) / period_ns) + capacity``, exactly (whole tokens only).

    The bucket holds at most ``capacity`` tokens at ``t0`` and gains ``amount`` tokens per
    period after it, and admitted hits are whole tokens.
    """
    sequence = data.draw(arrivals(limit))
    moments = times(start, sequence)
    hits = admitted(sequence, drive(limit, start, sequence))
    for t0, t1, total in _interval_sums(moments, hits):
        assert total <= limit.amount * (t1 - t0) // limit.period_ns + limit.capacity


def test_interval_bound_is_attained() -> None:
    """The bound is tight: a full bucket drained at t0, then one token per refill interval."""
    limit = Limit(4, Unit.SECOND, burst=6)
    bucket = tb.new_bucket(limit, T0)
    assert tb.take(bucket, limit, T0, 6).allowed
    step = NS_PER_SECOND // 4
    assert all(tb.take(bucket, limit, T0 + k * step).allowed for k in range(1, 9))
    t1 = T0 + 8 * step
    assert limit.amount * (t1 - T0) // limit.period_ns + limit.capacity == 6 + 8


@dataclass(slots=True)
class ExactBucket:
    """The reference model: tokens as an exact fraction, refilled at ``amount / period_ns``."""

    limit: Limit
    tokens: Fraction
    at: int

    def advance(self, now: int) -> None:
        if now > self.at:
            rate = Fraction(self.limit.amount, self.limit.period_ns)
            if self.tokens < self.limit.capacity:
                self.tokens = min(
                    Fraction(self.limit.capacity), self.tokens + rate * (now - self.at)
                )
            self.at = now

    def wait_for(self, tokens: int) -> int:
        """Whole ns until ``tokens`` are held: 0 now, -1 never."""
        if self.tokens >= tokens:
            return 0
        if self.limit.amount == 0 or tokens > self.limit.capacity:
            return -1
        return math.ceil((tokens - self.tokens) * self.limit.period_ns / self.limit.amount)

    def apply(self, arrival: Arrival, now: int) -> bool | None:
        self.advance(now)
        if arrival.reported:
            floor = -tb.DEBT_HORIZON_PERIODS * self.limit.amount
            self.tokens = max(Fraction(floor), self.tokens - arrival.hits)
            return None
        allowed = self.tokens >= arrival.hits
        if allowed:
            self.tokens -= arrival.hits
        return allowed


@THOROUGH
@given(st.data(), buckets, starts())
def test_matches_exact_rational_reference(data: st.DataObject, limit: Limit, start: int) -> None:
    """No admission lost or invented by rounding, over long mixed take/debit sequences."""
    sequence = data.draw(arrivals(limit, min_size=30, max_size=100, reports=True))
    model = ExactBucket(limit, Fraction(limit.capacity), start)
    results = drive(limit, start, sequence)
    model_admitted = 0
    for arrival, now, result in zip(sequence, times(start, sequence), results, strict=True):
        expected = model.apply(arrival, now)
        model_admitted += arrival.hits if expected else 0
        if result is None:
            continue
        remaining = max(0, math.floor(model.tokens))
        assert (result.allowed, result.remaining) == (expected, remaining)
        assert result.retry_after_ns == (model.wait_for(1) if remaining == 0 else 0)
        if limit.amount:
            assert result.reset_after_ns == model.wait_for(limit.capacity)
    assert sum(admitted(sequence, results)) == model_admitted


@THOROUGH
@given(
    st.data(),
    limits(Algorithm.TOKEN_BUCKET).filter(lambda limit: limit.amount > 0 and limit.capacity > 0),
    st.integers(1, 200),
)
def test_debt_is_repaid_at_exactly_the_refill_rate(
    data: st.DataObject, limit: Limit, owed: int
) -> None:
    """After reported hits drive the bucket into debt, nothing is admitted until the debt plus
    one token has refilled, and the wait the bucket states is exact to the nanosecond."""
    bucket, now = settle(data, limit, max_size=20)
    tb.debit(bucket, limit, now, owed + max(0, tb.available(bucket, limit)))
    level = bucket.level
    assert level < 0
    wait = tb.ns_until(bucket, limit, 1)
    repaid = tb.ns_until(bucket, limit, 0)
    assert repaid == -(level // limit.amount)  # ceil(debt / rate)
    assert wait == -((level - limit.period_ns) // limit.amount)
    assert tb.take(replace(bucket), limit, now, 0).retry_after_ns == wait

    # The debt shrinks by exactly `amount` units per ns.
    for elapsed in data.draw(st.lists(st.integers(0, repaid), max_size=5)):
        probe = replace(bucket)
        tb.refill(probe, limit, now + elapsed)
        assert probe.level == level + elapsed * limit.amount

    # Nothing is admitted before `wait`, whatever the batch size; one hit is admitted at it.
    for early in data.draw(st.lists(st.integers(0, wait - 1), max_size=5)):
        hits = data.draw(st.integers(1, 4))
        assert not tb.take(replace(bucket), limit, now + early, hits).allowed
    assert not tb.take(replace(bucket), limit, now + wait - 1).allowed
    assert tb.take(bucket, limit, now + wait).allowed


@FAST
@given(st.data(), buckets, st.integers(T0 - ONE_YEAR_NS, T0))
def test_same_decisions_a_year_and_fifty_years_later(
    data: st.DataObject, limit: Limit, start: int
) -> None:
    """Only elapsed time matters: no drift from the magnitude of ns-since-epoch timestamps."""
    sequence = data.draw(arrivals(limit, reports=True))
    baseline = drive(limit, start, sequence)
    for shift in (ONE_YEAR_NS, FIFTY_YEARS_NS, FIFTY_YEARS_NS + 1):
        assert drive(limit, start + shift, sequence) == baseline


@FAST
@given(st.data(), buckets, starts())
def test_a_clock_stepping_back_admits_nothing_extra(
    data: st.DataObject, limit: Limit, start: int
) -> None:
    """Admissions never exceed what the latest time seen allows: stepping back refills nothing."""
    sequence = data.draw(arrivals(limit, backwards=True))
    hits = admitted(sequence, drive(limit, start, sequence))
    latest = max([start, *times(start, sequence)])
    assert sum(hits) <= limit.capacity + limit.amount * (latest - start) // limit.period_ns


@FAST
@given(limits(), st.integers(min_value=-(10**6), max_value=10**6), st.booleans())
def test_outcome_reads_the_bucket_as_ns_until_does(
    limit: Limit, tokens: int, allowed: bool
) -> None:
    """``outcome`` inlines ns_until for the reset; both must say the same of any level."""
    bucket = tb.TokenBucket(min(tokens * limit.period_ns, limit.capacity * limit.period_ns), T0)
    result = tb.outcome(bucket, limit, allowed)
    remaining = max(0, tb.available(bucket, limit))
    retry = tb.ns_until(bucket, limit, 1) if remaining == 0 else 0
    expected = Outcome(
        allowed, remaining, max(0, tb.ns_until(bucket, limit, limit.capacity)), retry
    )
    assert result == expected
