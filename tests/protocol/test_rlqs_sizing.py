"""Assignment sizing: one counter's state and its sharers in, an Envoy strategy out."""

from __future__ import annotations

from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol.rlqs_sizing import Assignment, RlqsSettings, assign, strictest
from ratekeeper.protocol.rlqs_values import Blanket, TokenBucket

SETTINGS = RlqsSettings()
MS = 1_000_000


def state(remaining: int, retry_after_ns: int = 0) -> Outcome:
    return Outcome(remaining > 0, remaining, 0, retry_after_ns)


def rate(bucket: TokenBucket) -> float:
    return bucket.tokens_per_fill * NS_PER_SECOND / bucket.fill_interval_ns


def test_one_envoy_gets_the_whole_refill_and_the_remaining_burst() -> None:
    got = assign(state(10), Limit(10, Unit.SECOND), 1, SETTINGS)
    assert isinstance(got.strategy, TokenBucket)
    assert got.strategy.max_tokens == 10
    assert rate(got.strategy) == 10
    assert got.ttl_ns == SETTINGS.ttl_ns
    assert got.recheck_ns is None


def test_sharers_split_rate_and_burst_equally() -> None:
    got = assign(state(100), Limit(100, Unit.MINUTE), 2, SETTINGS).strategy
    assert isinstance(got, TokenBucket)
    assert got.max_tokens == 50
    assert abs(rate(got) - 100 / 60 / 2) < 1e-9


def test_fill_intervals_are_whole_seconds_and_the_share_shows_in_tokens_per_fill() -> None:
    # Envoy reads fill_interval in whole seconds, and keeps its bucket when tokens_per_fill,
    # max_tokens and the interval's nanos are unchanged: a new share must change tokens_per_fill.
    one = assign(state(0 + 1), Limit(5, Unit.SECOND), 1, SETTINGS).strategy
    two = assign(state(0 + 1), Limit(5, Unit.SECOND), 2, SETTINGS).strategy
    assert one == TokenBucket(1, 5, NS_PER_SECOND)
    assert two == TokenBucket(1, 10, 4 * NS_PER_SECOND)
    for bucket in (one, two):
        assert isinstance(bucket, TokenBucket)
        assert bucket.fill_interval_ns % NS_PER_SECOND == 0
    slow = assign(state(3), Limit(3, Unit.MINUTE), 2, SETTINGS).strategy
    assert isinstance(slow, TokenBucket)
    assert rate(slow) == 3 / 60 / 2


def test_a_share_that_rounds_to_zero_still_holds_one_token() -> None:
    got = assign(state(1), Limit(10, Unit.SECOND), 4, SETTINGS).strategy
    assert isinstance(got, TokenBucket)
    assert got.max_tokens == 1


def test_an_exhausted_counter_is_denied_until_refilled_plus_grace_with_a_recheck() -> None:
    got = assign(state(0, 1_500 * MS), Limit(10, Unit.SECOND), 1, SETTINGS)
    assert got.strategy is Blanket.DENY_ALL
    assert got.recheck_ns == 1_500 * MS
    assert got.ttl_ns == 1_500 * MS + SETTINGS.deny_grace_ns


def test_a_zero_limit_is_denied_for_the_whole_ttl_without_recheck() -> None:
    got = assign(state(0, -1), Limit(0, Unit.SECOND), 1, SETTINGS)
    assert got == Assignment(Blanket.DENY_ALL, SETTINGS.ttl_ns)


def test_strictest_takes_the_slowest_rate_the_smallest_burst_and_any_denial() -> None:
    a = assign(state(10), Limit(10, Unit.SECOND), 1, SETTINGS)
    b = assign(state(5), Limit(1000, Unit.DAY), 1, SETTINGS)
    got = strictest([a, b], SETTINGS).strategy
    assert isinstance(got, TokenBucket)
    assert got.max_tokens == 5
    assert abs(rate(got) - 1000 / 86_400) < 1e-9
    deny = assign(state(0, 2 * NS_PER_SECOND), Limit(1, Unit.SECOND), 1, SETTINGS)
    assert strictest([a, deny], SETTINGS).strategy is Blanket.DENY_ALL
    assert strictest([], SETTINGS).strategy is Blanket.ALLOW_ALL
