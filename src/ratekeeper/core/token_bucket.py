"""Token bucket that can go into debt, in exact integer arithmetic.

The level is kept in *token-nanoseconds per period*: one token is ``period_ns`` units, and each
elapsed nanosecond adds ``amount`` units. Refill, debit and the time until a level is reached
are therefore exact integer operations: no float rounding, no drift after a year of uptime, and
no admission lost or invented by rounding.

Two ways hits arrive:

* :func:`take` decides: it admits only if the bucket holds enough tokens (the server's own
  decisions, e.g. for Envoy's ``ShouldRateLimit``).
* :func:`debit` is told: hits already admitted elsewhere (batch reports) are subtracted even past
  zero. The resulting debt must be repaid at the refill rate before :func:`take` admits again,
  so the long-run admitted rate cannot exceed the policy whatever clients did between reports.
  The debt is capped at :data:`DEBT_HORIZON_PERIODS` periods of refill, or at the ``debt``
  tokens the caller allows if more (:func:`debt_floor`; the report path allows what the
  clients reporting the key could admit in one round, so a fleet's optimism is carried, not
  forgiven). That is the trust bound: no report, however large its counts, blocks a key for
  longer than that horizon after the bucket is empty; overshoot past it is forgiven.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import Limit, ceil_div
from ratekeeper.core.outcome import Outcome

__all__ = [
    "DEBT_HORIZON_PERIODS",
    "TokenBucket",
    "available",
    "debit",
    "debt_floor",
    "new_bucket",
    "ns_until",
    "outcome",
    "refill",
    "take",
]


#: Most debt a bucket carries, in periods of its refill (``amount`` tokens each).
DEBT_HORIZON_PERIODS = 2


@dataclass(slots=True)
class TokenBucket:
    """Mutable bucket state; one per key, owned by a single writer."""

    #: Tokens × ``period_ns``. Negative while in debt; at most ``capacity × period_ns``.
    level: int
    #: Time (ns, caller's clock) the level was last brought up to date.
    updated_at: int


def new_bucket(limit: Limit, now: int) -> TokenBucket:
    """A full bucket."""
    return TokenBucket(limit.capacity * limit.period_ns, now)


def refill(bucket: TokenBucket, limit: Limit, now: int) -> None:
    """Bring ``bucket`` up to ``now``. A clock that steps backwards refills nothing."""
    elapsed = now - bucket.updated_at
    if elapsed <= 0:
        return
    bucket.updated_at = now
    top = limit.capacity * limit.period_ns
    if bucket.level < top:
        bucket.level = min(top, bucket.level + elapsed * limit.amount)


def available(bucket: TokenBucket, limit: Limit) -> int:
    """Whole tokens in the bucket (negative while in debt), as of its last refill."""
    return bucket.level // limit.period_ns


def ns_until(bucket: TokenBucket, limit: Limit, tokens: int) -> int:
    """Nanoseconds until the bucket holds ``tokens`` tokens; 0 if it does; -1 if it never will."""
    missing = tokens * limit.period_ns - bucket.level
    if missing <= 0:
        return 0
    if limit.amount == 0 or tokens > limit.capacity:
        return -1
    return ceil_div(missing, limit.amount)


def outcome(bucket: TokenBucket, limit: Limit, allowed: bool) -> Outcome:
    """Describe the bucket's state after a decision."""
    # ns_until() and available(), inline where it saves a call: the RLS hot path builds one
    # outcome per counter per call.
    level, period_ns = bucket.level, limit.period_ns
    remaining = max(0, level // period_ns)
    to_full = limit.capacity * period_ns - level
    # Positional: keywords cost measurably more here.
    return Outcome(
        allowed,
        remaining,
        ceil_div(to_full, limit.amount) if to_full > 0 and limit.amount else 0,  # reset_after_ns
        ns_until(bucket, limit, 1) if remaining == 0 else 0,  # retry_after_ns
    )


def take(bucket: TokenBucket, limit: Limit, now: int, hits: int = 1) -> Outcome:
    """Admit ``hits`` if the bucket holds that many tokens; otherwise take nothing.

    ``hits == 0`` checks without counting.
    """
    refill(bucket, limit, now)
    cost = hits * limit.period_ns
    allowed = bucket.level >= cost
    if allowed:
        bucket.level -= cost
    return outcome(bucket, limit, allowed)


def debt_floor(limit: Limit, debt: int = 0) -> int:
    """The lowest level a debit may leave: :data:`DEBT_HORIZON_PERIODS` periods of refill, or
    ``debt`` tokens if more."""
    return -max(DEBT_HORIZON_PERIODS * limit.amount, debt) * limit.period_ns


def debit(bucket: TokenBucket, limit: Limit, now: int, hits: int, debt: int = 0) -> None:
    """Subtract ``hits`` admitted elsewhere, going into debt if need be, but never deeper than
    :func:`debt_floor` (``debt``: tokens of debt allowed beyond the horizon)."""
    refill(bucket, limit, now)
    bucket.level = max(debt_floor(limit, debt), bucket.level - hits * limit.period_ns)
