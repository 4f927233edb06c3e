"""The instruction maths: reject-for from the counter, rate shares from reported demand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core import token_bucket as tb
from ratekeeper.core.algorithms import STRATEGIES, peek
from ratekeeper.core.instructions import UNBOUNDED, Instruction, demand_rate, instruct
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

from .strategies import FAST, THOROUGH, TODAY_NS, limits

VALID = 2 * NS_PER_SECOND
HUNDRED = Limit(100, Unit.SECOND)


def test_under_the_limit_admits_optimistically() -> None:
    state = peek(tb.new_bucket(HUNDRED, TODAY_NS), HUNDRED, TODAY_NS)
    assert instruct(state, HUNDRED, 40.0, 90.0, VALID) == Instruction(0, UNBOUNDED, VALID)
    assert instruct(state, HUNDRED, 0.0, 0.0, VALID) == Instruction(0, UNBOUNDED, VALID)
    assert instruct(state, HUNDRED, 100.0, 100.0, VALID).admit_rate == UNBOUNDED


@THOROUGH
@given(
    limits(Algorithm.TOKEN_BUCKET).filter(lambda limit: limit.amount > 0 and limit.capacity > 0),
    st.integers(1, 1000),
    st.integers(0, 10**12),
)
def test_in_debt_reject_for_is_the_time_to_repay(limit: Limit, owed: int, later: int) -> None:
    bucket = tb.new_bucket(limit, TODAY_NS)
    tb.debit(bucket, limit, TODAY_NS, limit.capacity + owed)
    now = TODAY_NS + later
    tb.refill(bucket, limit, now)
    instruction = instruct(peek(bucket, limit, now), limit, 1.0, 1.0, VALID)
    assert instruction.reject_for_ns == tb.ns_until(bucket, limit, 1)
    if instruction.reject_for_ns:
        # Exactly then, and not a nanosecond before, the server would admit again.
        assert not tb.take(
            tb.TokenBucket(bucket.level, now), limit, now + instruction.reject_for_ns - 1
        ).allowed
        assert tb.take(bucket, limit, now + instruction.reject_for_ns).allowed


def test_exhausted_fixed_window_rejects_until_the_reset() -> None:
    limit = Limit(20, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)
    at = 1_234_500_000_000  # 25.5 s before the minute ends
    window = STRATEGIES[limit.algorithm].new(limit, at)
    STRATEGIES[limit.algorithm].debit(window, limit, at, 20)
    assert instruct(peek(window, limit, at), limit, 1.0, 1.0, VALID).reject_for_ns == 25_500_000_000


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_limit_of_zero_rejects_for_the_whole_validity(algorithm: Algorithm) -> None:
    limit = Limit(0, Unit.MINUTE, algorithm=algorithm)
    state = STRATEGIES[algorithm].new(limit, TODAY_NS)
    instruction = instruct(peek(state, limit, TODAY_NS), limit, 5.0, 5.0, VALID)
    assert instruction == Instruction(VALID, 0.0, VALID)


def after_taking(limit: Limit, taken: int) -> Outcome:
    """A bucket's state once ``taken`` of its tokens are spent."""
    bucket = tb.new_bucket(limit, TODAY_NS)
    tb.debit(bucket, limit, TODAY_NS, taken)
    return peek(bucket, limit, TODAY_NS)


def test_one_client_over_the_policy_gets_the_seeds_rejection_rate() -> None:
    """rejectionRate = (estimatedQps - policy) / estimatedQps, said as what to admit: the steady
    state, where the bucket is drained and its refill is all there is to share."""
    state = after_taking(HUNDRED, HUNDRED.capacity)
    admit = instruct(state, HUNDRED, 400.0, 400.0, VALID).admit_rate
    assert admit == 100.0
    assert 1 - admit / 400.0 == (400.0 - 100.0) / 400.0


@FAST
@given(
    limits(Algorithm.TOKEN_BUCKET),
    st.floats(0.0, 1.0),
    st.integers(100, 5000),
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=8),
)
def test_rate_shares_split_what_the_counter_can_supply_in_proportion_to_demand(
    limit: Limit, spent: float, horizon_ms: int, demands: list[float]
) -> None:
    """The supply is the refill rate plus the unspent tokens spread over the horizon: demand
    within it restricts nobody; demand beyond it gets exactly the supply, split by demand."""
    state = after_taking(limit, int(limit.capacity * spent))
    horizon = horizon_ms * 1_000_000
    supply = limit.rate_per_s + state.remaining * NS_PER_SECOND / horizon
    total = math.fsum(demands)
    rates = [instruct(state, limit, d, total, VALID, horizon).admit_rate for d in demands]
    if total <= supply:
        assert all(rate == UNBOUNDED for rate in rates)
        return
    assert math.isclose(math.fsum(rates), supply, rel_tol=1e-9, abs_tol=1e-12)
    for demand, rate in zip(demands, rates, strict=True):
        assert 0.0 <= rate <= demand
        assert math.isclose(rate * total, supply * demand, rel_tol=1e-9, abs_tol=1e-9)


def test_a_counter_with_tokens_to_spare_restricts_nobody() -> None:
    """Ten sparse clients whose one-hit reports read as 10/s each: 100/s of apparent demand
    against a 50/s policy whose bucket is full is no reason to pace anyone."""
    limit = Limit(50, Unit.SECOND)
    state = after_taking(limit, 0)
    assert instruct(state, limit, 10.0, 100.0, VALID).admit_rate == UNBOUNDED


@pytest.mark.parametrize(
    ("admitted", "rejected", "interval_ns", "rate"),
    [
        (100, 0, 100_000_000, 1000.0),
        (60, 40, 100_000_000, 1000.0),
        (0, 0, 100_000_000, 0.0),
        (5, 0, NS_PER_SECOND, 5.0),
        (1, 0, 0, 1000.0),  # an empty interval counts as 1 ms
        (1, 0, 500_000, 1000.0),
        (3, 0, 1_000_000, 3000.0),
    ],
)
def test_demand_rate(admitted: int, rejected: int, interval_ns: int, rate: float) -> None:
    assert demand_rate(admitted, rejected, interval_ns) == rate


def test_repaying_debt_shrinks_the_shares_below_the_refill_rate() -> None:
    """Shares adding up to the refill rate would hold a debt where it is (issue 11, bound 3)."""
    bucket = tb.new_bucket(HUNDRED, TODAY_NS)
    tb.debit(bucket, HUNDRED, TODAY_NS, HUNDRED.capacity + 50)  # 50 tokens of debt
    state = peek(bucket, HUNDRED, TODAY_NS)
    held = instruct(state, HUNDRED, 100.0, 200.0, VALID)
    repaid = instruct(state, HUNDRED, 100.0, 200.0, VALID, repay_debt=True)
    assert held.admit_rate == pytest.approx(50.0)  # half of the refill rate
    assert repaid.admit_rate == pytest.approx(25.0)  # half of 100/s less 50 tokens over 1 s
    assert repaid.reject_for_ns == held.reject_for_ns
    deeper = tb.new_bucket(HUNDRED, TODAY_NS)
    tb.debit(deeper, HUNDRED, TODAY_NS, HUNDRED.capacity + 500)
    deep = instruct(peek(deeper, HUNDRED, TODAY_NS), HUNDRED, 1.0, 2.0, VALID, repay_debt=True)
    assert deep.admit_rate == 0.0  # never negative
