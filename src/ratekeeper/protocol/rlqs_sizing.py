"""How big an Envoy's assignment is: one counter's state and its sharers in, a strategy out.

Envoy's ``rate_limit_quota`` filter reports each bucket's usage only every reporting interval
(hard-coded to 5 s in Envoy 1.40), so between two reports the server cannot correct an Envoy:
the assignment alone must keep the bucket's counter out of debt. Each of the ``n`` Envoys
subscribed to a bucket gets an equal share:

* a ``token_bucket`` refilling at ``rate / n`` and holding ``max(1, remaining // n)`` tokens,
  ``remaining`` being what the counter could admit when the report was applied. Envoy starts
  a bucket at most full (a replaced one keeps its fill ratio), so over the next interval ``I``
  the Envoys admit at most ``remaining + rate × I`` together (plus one token per Envoy whose
  share rounds to zero): what the counter refills meanwhile, so Envoy traffic alone never
  drives it into debt;
* ``DENY_ALL`` while the counter has nothing to admit (exhausted, or in debt because another API
  shares it), for as long as it needs to refill plus a grace, with a re-check due when it has
  refilled, so that the next token bucket is pushed before the denial expires;
* ``DENY_ALL`` for a limit of 0.

A rule with several limits gets the strictest of its limits' assignments. docs/envoy.md states
the accuracy this buys.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol.rlqs_values import Blanket, TokenBucket

__all__ = ["Assignment", "RlqsSettings", "assign", "strictest"]

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class RlqsSettings:
    """How assignments are sized and how long they hold."""

    #: Envoy's reporting interval (1.40 ignores the configured one and reports every 5 s).
    report_interval_ns: int = 5 * NS_PER_SECOND
    #: An assignment holds for this many reporting intervals; each report's answer renews it,
    #: so only an Envoy that lost the server falls back (to its ``no_assignment_behavior``).
    ttl_intervals: int = 3
    #: Reports in a row with no request before a bucket is abandoned.
    idle_reports: int = 2
    #: A ``DENY_ALL`` outlives the counter's refill by this much: the re-check pushes the next
    #: token bucket before it expires, so Envoy never falls back to allowing in between.
    deny_grace_ns: int = NS_PER_SECOND
    #: How often expected admissions are debited ahead of Envoy's reports.
    pace_interval_ns: int = 500 * _MS
    #: Most buckets one stream may subscribe to.
    max_buckets: int = 10_000
    #: Most keys in one bucket id, and the longest domain, key or value (characters).
    max_entries: int = 16
    max_text: int = 256

    @property
    def ttl_ns(self) -> int:
        """How long an assignment holds from receipt."""
        return self.ttl_intervals * self.report_interval_ns


@dataclass(frozen=True, slots=True)
class Assignment:
    """One Envoy's strategy for one counter, and when to look at the counter again."""

    strategy: Blanket | TokenBucket
    ttl_ns: int
    #: Re-check the counter this long from now (``None``: the next report will do).
    recheck_ns: int | None = None


def assign(state: Outcome, limit: Limit, sharers: int, settings: RlqsSettings) -> Assignment:
    """The assignment of one of ``sharers`` Envoys, given the counter's ``state`` now."""
    sharers = max(sharers, 1)
    if limit.amount == 0 or (state.remaining <= 0 and state.retry_after_ns < 0):
        return Assignment(Blanket.DENY_ALL, settings.ttl_ns)
    if state.remaining <= 0:
        wait = max(state.retry_after_ns, _MS)
        return Assignment(Blanket.DENY_ALL, wait + settings.deny_grace_ns, wait)
    return Assignment(_bucket(limit, sharers, state.remaining), settings.ttl_ns)


def _bucket(limit: Limit, sharers: int, remaining: int) -> TokenBucket:
    # rate / n = amount × n tokens every period × n². Envoy reads ``fill_interval`` in whole
    # seconds (a sub-second interval becomes 0: an infinite rate), and it keeps the bucket it
    # has when ``max_tokens``, ``tokens_per_fill`` and the interval's *nanos* are unchanged, so
    # the share must show in ``tokens_per_fill``: ``amount / (period × n)`` would not.
    burst = max(1, min(remaining, limit.capacity) // sharers)
    return TokenBucket(burst, limit.amount * sharers, limit.period_ns * sharers * sharers)


def _rate(bucket: TokenBucket) -> float:
    return bucket.tokens_per_fill / bucket.fill_interval_ns


def strictest(assignments: list[Assignment], settings: RlqsSettings) -> Assignment:
    """The strictest of several limits' assignments (one Envoy bucket enforces them all)."""
    denials = [a for a in assignments if a.strategy is Blanket.DENY_ALL]
    if denials:
        rechecks = [a.recheck_ns for a in denials]
        recheck = None if None in rechecks else max(r for r in rechecks if r is not None)
        return Assignment(Blanket.DENY_ALL, max(a.ttl_ns for a in denials), recheck)
    buckets = [a.strategy for a in assignments if isinstance(a.strategy, TokenBucket)]
    if not buckets:
        return Assignment(Blanket.ALLOW_ALL, settings.ttl_ns)
    slowest = min(buckets, key=_rate)
    tokens = min(b.max_tokens for b in buckets)
    return Assignment(
        TokenBucket(tokens, slowest.tokens_per_fill, slowest.fill_interval_ns), settings.ttl_ns
    )
