"""envoyproxy/ratelimit's fixed window, exactly.

Windows are aligned to the Unix epoch in whole seconds: the window of ``now`` starts at
``floor(now_s / period_s) * period_s``. A hit computes ``after = count + hits`` and is over the
limit when ``after > amount``; the reference service increments the counter either way (Redis
``INCRBY``), unless the stop-incrementing option is on. ``limit_remaining`` is
``amount - after`` when within the limit and 0 when over; ``duration_until_reset`` is
``period_s - now_s % period_s``.

``now`` here is nanoseconds since the Unix epoch (the caller's wall clock): windows must line up
with those of every other process sharing the counter.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Limit, window_start
from ratekeeper.core.outcome import CountedOutcome, Outcome

# window_start is re-exported: it is this algorithm's window, and the Redis store uses it so.
__all__ = ["FixedWindow", "count", "debit", "new_window", "reset_after_s", "window_start"]


@dataclass(slots=True)
class FixedWindow:
    """Mutable window state; one per key."""

    #: Start of the current window, in whole seconds since the epoch.
    start_s: int
    #: Hits counted in that window.
    count: int


def new_window(limit: Limit, now: int) -> FixedWindow:
    """An empty window at ``now``."""
    return FixedWindow(window_start(limit, now), 0)


def _roll(window: FixedWindow, limit: Limit, now: int) -> None:
    start = window_start(limit, now)
    # A clock stepping back keeps counting in the newer window: resetting would forget its hits.
    if start > window.start_s:
        window.start_s = start
        window.count = 0


def count(
    window: FixedWindow,
    limit: Limit,
    now: int,
    hits: int = 1,
    *,
    stop_when_over: bool = False,
) -> Outcome:
    """Count ``hits`` and decide as the reference service does.

    With ``stop_when_over`` a batch that would go over is not counted at all (the reference's
    ``STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT``).
    """
    _roll(window, limit, now)
    after = window.count + hits
    over = after > limit.amount
    if not (over and stop_when_over):
        window.count = after
    reset_ns = (window.start_s + limit.period_s) * NS_PER_SECOND - now
    if over:
        return CountedOutcome.over(reset_ns, _retry_after(window, limit, reset_ns), after)
    return Outcome(
        allowed=True,
        remaining=limit.amount - after,
        reset_after_ns=reset_ns,
        retry_after_ns=_retry_after(window, limit, reset_ns),
    )


def _retry_after(window: FixedWindow, limit: Limit, reset_ns: int) -> int:
    """From the counter as left (a batch refused under ``stop_when_over`` may leave room)."""
    if window.count < limit.amount:
        return 0
    return reset_ns if limit.amount else -1  # a limit of 0 never admits


def reset_after_s(limit: Limit, now: int) -> int:
    """``duration_until_reset`` in whole seconds, as the reference computes it."""
    return window_start(limit, now) + limit.period_s - now // NS_PER_SECOND


def debit(window: FixedWindow, limit: Limit, now: int, hits: int) -> None:
    """Count ``hits`` admitted elsewhere (a batch report): the counter simply goes up."""
    _roll(window, limit, now)
    window.count += hits
