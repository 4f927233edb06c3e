"""Pacing: the local limiter never beats the policy's bucket; granted paces are exact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core import pacing
from ratekeeper.core import token_bucket as tb
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit

from .strategies import FAST, THOROUGH, limits

MS = 1_000_000


@THOROUGH
@given(
    limit=limits(Algorithm.TOKEN_BUCKET, max_amount=20),
    steps=st.lists(
        st.tuples(
            st.integers(0, 400 * MS),  # gap before the call
            st.integers(1, 3),  # hits
            st.none() | st.floats(0.01, 100.0),  # switch to a granted pace (None: policy pace)
        ),
        max_size=80,
    ),
)
def test_no_pace_mix_admits_what_the_policy_bucket_refuses(
    limit: Limit, steps: list[tuple[int, int, float | None]]
) -> None:
    policy = pacing.policy_pace(limit)
    bucket = tb.new_bucket(limit, 0)
    earliest, now = 0, 0
    for gap, hits, rate in steps:
        now += gap
        if policy is None:
            assert pacing.wait_ns(pacing.NEVER, now, pacing.Pace(1, 0, 0)) == -1
            return
        pace = policy if rate is None else pacing.granted_pace(rate, policy)
        assert pace.emission_ns >= policy.emission_ns
        assert pace.burst_ns <= policy.burst_ns
        assert pace.tolerance_ns <= policy.tolerance_ns + pace.emission_ns - policy.emission_ns
        after = pacing.admit(earliest, now, pace, hits)
        if after is not None:
            assert tb.take(bucket, limit, now, hits).allowed
            earliest = after


@FAST
@given(rate=st.sampled_from([1, 2, 4, 5, 8, 10, 20, 25, 40, 50]), offset=st.integers(0, MS - 1))
def test_granted_small_rate_admits_exactly_rate_per_second(rate: int, offset: int) -> None:
    policy = pacing.policy_pace(Limit(1000, Unit.SECOND))
    assert policy is not None
    pace = pacing.granted_pace(float(rate), policy)
    earliest = 0
    per_second = [0] * 10
    for t in range(10_000):  # one call per millisecond for 10 s
        now = offset + t * MS
        after = pacing.admit(earliest, now, pace)
        if after is not None:
            earliest = after
            per_second[t // 1000] += 1
    assert per_second == [rate] * 10


def test_five_per_second_spreads_evenly() -> None:
    policy = pacing.policy_pace(Limit(100, Unit.SECOND))
    assert policy is not None
    pace = pacing.granted_pace(5.0, policy)
    admitted_at = []
    earliest = 0
    for t in range(0, 2 * NS_PER_SECOND, MS):
        after = pacing.admit(earliest, t, pace)
        if after is not None:
            earliest = after
            admitted_at.append(t // MS)
    assert admitted_at == [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]


@FAST
@given(
    limit=limits(Algorithm.TOKEN_BUCKET, max_amount=30),
    earliest=st.integers(0, 10 * NS_PER_SECOND),
    now=st.integers(0, 10 * NS_PER_SECOND),
    hits=st.integers(1, 5),
)
def test_remaining_and_wait_agree_with_admit(
    limit: Limit, earliest: int, now: int, hits: int
) -> None:
    pace = pacing.policy_pace(limit)
    if pace is None:
        return
    admitted = pacing.admit(earliest, now, pace, hits) is not None
    assert admitted == (pacing.remaining(earliest, now, pace) >= hits)
    wait = pacing.wait_ns(earliest, now, pace, hits)
    assert admitted == (wait == 0)
    if wait > 0:
        assert pacing.admit(earliest, now + wait - 1, pace, hits) is None
        assert pacing.admit(earliest, now + wait, pace, hits) is not None
    if wait == -1:
        assert hits > limit.capacity


@FAST
@given(until=st.integers(0, 10 * NS_PER_SECOND), now=st.integers(0, 10 * NS_PER_SECOND))
def test_reject_until_admits_nothing_before_until(until: int, now: int) -> None:
    pace = pacing.policy_pace(Limit(50, Unit.SECOND, burst=100))
    assert pace is not None
    earliest = pacing.reject_until(0, until)
    assert (pacing.admit(earliest, now, pace) is not None) == (now >= until)


def test_zero_limit_has_no_pace_and_zero_rate_never_admits() -> None:
    assert pacing.policy_pace(Limit(0, Unit.SECOND)) is None
    policy = pacing.policy_pace(Limit(10, Unit.SECOND))
    assert policy is not None
    blocked = pacing.granted_pace(0.0, policy)
    assert pacing.admit(0, 0, blocked) is not None  # the first hit uses the slot it already had
    assert pacing.admit(blocked.emission_ns, NS_PER_SECOND * 3600, blocked) is None
    assert pacing.granted_pace(float("inf"), policy) == policy
