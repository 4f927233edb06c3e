"""Sliding-window counter: the previous window's count, weighted by how much of it still
overlaps the sliding window, plus the current window's count.

With ``P`` the period, ``e`` the time elapsed in the current (epoch-aligned) window, ``prev`` and
``cur`` the two counts, a hit of ``n`` is admitted when::

    prev * (P - e) / P + cur + n <= amount

which is evaluated multiplied through by ``P`` so that it stays in exact integers. Only admitted
hits are counted by :func:`count`; :func:`debit` counts hits admitted elsewhere unconditionally.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Limit, window_start
from ratekeeper.core.outcome import Outcome

__all__ = ["SlidingWindow", "count", "debit", "new_window"]


@dataclass(slots=True)
class SlidingWindow:
    """Mutable state; one per key."""

    #: Start of the current window, whole seconds since the epoch.
    start_s: int
    #: Hits counted in the current window.
    current: int
    #: Hits counted in the window before it.
    previous: int


def new_window(limit: Limit, now: int) -> SlidingWindow:
    """An empty window at ``now`` (ns since the epoch)."""
    return SlidingWindow(window_start(limit, now), 0, 0)


def _roll(window: SlidingWindow, limit: Limit, now: int) -> None:
    start = window_start(limit, now)
    if start <= window.start_s:  # same window, or a clock stepping back: keep the newer counts
        return
    window.previous = window.current if start - window.start_s == limit.period_s else 0
    window.current = 0
    window.start_s = start


def _used(window: SlidingWindow, limit: Limit, now: int) -> int:
    """The weighted count, multiplied by ``P`` (ns)."""
    period = limit.period_ns
    elapsed = now - window.start_s * NS_PER_SECOND
    return window.previous * (period - elapsed) + window.current * period


def _retry_after(window: SlidingWindow, limit: Limit, now: int) -> int:
    """Nanoseconds until one more hit fits; -1 if it never will (amount 0)."""
    if limit.amount == 0:
        return -1
    period = limit.period_ns
    elapsed = now - window.start_s * NS_PER_SECOND
    to_end = period - elapsed
    room = limit.amount - 1 - window.current  # whole hits of room left for `previous`' share
    if room >= 0:
        # prev * (P - e') <= room * P  =>  e' >= P - room * P / prev
        if window.previous * to_end <= room * period:
            return 0
        need = period - (room * period) // window.previous
        return max(0, need - elapsed)
    # Next window: `current` becomes `previous` and must decay until amount - 1 fits.
    need = period - ((limit.amount - 1) * period) // window.current
    return to_end + need


def _outcome(window: SlidingWindow, limit: Limit, now: int, allowed: bool) -> Outcome:
    period = limit.period_ns
    used = _used(window, limit, now)
    remaining = max(0, (limit.amount * period - used) // period)
    elapsed = now - window.start_s * NS_PER_SECOND
    if window.current:
        reset = 2 * period - elapsed
    elif window.previous:
        reset = period - elapsed
    else:
        reset = 0
    return Outcome(
        allowed=allowed,
        remaining=remaining,
        reset_after_ns=reset,
        retry_after_ns=0 if remaining else _retry_after(window, limit, now),
    )


def count(window: SlidingWindow, limit: Limit, now: int, hits: int = 1) -> Outcome:
    """Admit and count ``hits`` if they fit in the sliding window; otherwise count nothing."""
    _roll(window, limit, now)
    allowed = _used(window, limit, now) + hits * limit.period_ns <= limit.amount * limit.period_ns
    if allowed:
        window.current += hits
    return _outcome(window, limit, now, allowed)


def debit(window: SlidingWindow, limit: Limit, now: int, hits: int) -> None:
    """Count ``hits`` admitted elsewhere."""
    _roll(window, limit, now)
    window.current += hits
