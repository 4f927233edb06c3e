"""A cold key's bucket dealt out over a fleet: the shares add up to one bucket, and none is
looser than the policy's own pace."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core import pacing
from ratekeeper.core.dealt import deal
from ratekeeper.core.limits import NS_PER_SECOND, Limit, parse_limit

FRESH = -pacing.NEVER


def _admitted_by(limit: Limit, fleet: int, slot: int, key_hash: int, t_ns: int) -> int:
    """Hits one client admits by ``t_ns`` after the deal starts if it asks at every instant."""
    share = deal(limit, fleet, slot, key_hash)
    assert share is not None
    earliest = share.first_ns if share.first_ns else FRESH
    admitted, now = 0, 0
    while now <= t_ns:
        after = pacing.admit(earliest, now, share.pace)
        if after is None:
            now = max(now + 1, earliest)
            continue
        earliest = after
        admitted += 1
    return admitted


@given(
    st.sampled_from(["10/s", "50/s", "100/s burst 200", "5/s", "4/minute", "1000/s"]),
    st.integers(2, 80),
    st.integers(0, 2**64 - 1),
    st.floats(0.0, 3.0),
)
def test_the_fleet_holds_one_bucket(text: str, fleet: int, key_hash: int, t_s: float) -> None:
    limit = parse_limit(text)
    t_ns = int(t_s * NS_PER_SECOND)
    total = sum(_admitted_by(limit, fleet, slot, key_hash, t_ns) for slot in range(fleet))
    policy = pacing.policy_pace(limit)
    assert policy is not None
    exact = limit.capacity + t_ns // policy.emission_ns  # the bucket's own schedule
    assert total == exact


@given(st.integers(2, 80), st.integers(0, 79), st.integers(0, 2**64 - 1))
def test_a_share_is_never_looser_than_the_policy(fleet: int, slot: int, key_hash: int) -> None:
    limit = parse_limit("100/s burst 200")
    share = deal(limit, fleet, slot % fleet, key_hash)
    policy = pacing.policy_pace(limit)
    assert share is not None
    assert policy is not None
    assert share.pace.emission_ns >= policy.emission_ns
    assert share.pace.burst_ns <= policy.burst_ns


def test_nothing_to_deal_for_one_client_or_a_limit_of_zero() -> None:
    assert deal(parse_limit("10/s"), 1, 0, 7) is None
    assert deal(parse_limit("0/s"), 40, 3, 7) is None
