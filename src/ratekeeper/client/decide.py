"""Deciding hits on a key's state, and explaining the decision: pure functions of ``now``.

The Limiter's ``allow()`` inlines the one-hit, one-lane case of :func:`take` (a call there would
be a large share of its cost); everything else comes here: several hits, several lanes, and the
explanation :class:`Decision` carries (remaining, retry-after, reset-after).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from ratekeeper.client.keystate import KeyState
from ratekeeper.core import pacing
from ratekeeper.core.limits import NS_PER_SECOND, Limit

__all__ = ["Decision", "bump", "decide", "take"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to ``Limiter.acquire``."""

    #: Whether the hits were admitted (and counted as admitted).
    allowed: bool
    #: Hits admissible right after this decision, by local state (``None``: no known limit).
    remaining: int | None
    #: Seconds until the hits would be admitted (0 when allowed; ``inf``: never).
    retry_after: float
    #: Seconds until the local limiter is back to full capacity.
    reset_after: float
    #: The limit enforced locally that binds first (``None``: none known).
    limit: Limit | None


def take(st: KeyState, now: int, hits: int = 1) -> bool:
    """Admit ``hits`` at ``now`` if every lane admits them, advancing every lane; counts nothing."""
    lanes = st.lanes
    if lanes is None:
        after = pacing.admit(st.earliest, now, st.pace, hits)
        if after is None:
            return False
        st.earliest = after
        return True
    afters = [pacing.admit(lane.earliest, now, lane.pace, hits) for lane in lanes]
    if None in afters:
        return False
    for lane, after in zip(lanes, afters, strict=True):
        lane.earliest = after  # type: ignore[assignment]  # no None: checked above
    st.earliest = max(lane.earliest for lane in lanes)
    return True


def bump(counter: itertools.count[int], hits: int) -> None:
    """Advance ``counter`` by ``hits``, each step atomic (the loop runs in C)."""
    if hits == 1:
        next(counter)
    else:
        deque(itertools.islice(counter, hits), maxlen=0)


def decide(st: KeyState, now: int, hits: int) -> Decision:
    """Decide ``hits`` (0: only check whether one would pass) and say why."""
    if hits < 0:
        raise ValueError("hits must be >= 0")
    if not hits:
        allowed = all(pacing.admit(e, now, pace, 1) is not None for e, pace, _ in _schedules(st))
        return _explain(st, now, 1, allowed=allowed)
    if take(st, now, hits):
        bump(st.admitted, hits)
        return _explain(st, now, hits, allowed=True)
    bump(st.rejected, hits)
    return _explain(st, now, hits, allowed=False)


def _schedules(st: KeyState) -> list[tuple[int, pacing.Pace, Limit | None]]:
    """Each lane as ``(earliest, pace, limit)``."""
    if st.lanes is None:
        return [(st.earliest, st.pace, st.limit)]
    return [(lane.earliest, lane.pace, lane.limit or st.limit) for lane in st.lanes]


def _explain(st: KeyState, now: int, hits: int, *, allowed: bool) -> Decision:
    """The decision just taken on ``st`` for ``hits`` at ``now``, with the binding lane's view."""
    if st.limit is None and st.lanes is None:
        wait = max(0, st.earliest - now)
        return Decision(allowed, None, 0.0 if allowed else wait / NS_PER_SECOND, 0.0, None)
    remaining, wait, reset, binding = None, 0, 0, st.limit
    rejecting: Limit | None = None  # refused: the lane that waits longest is the one rejecting
    for earliest, pace, limit in _schedules(st):
        left = pacing.remaining(earliest, now, pace) if pace.emission_ns else 0
        if remaining is None or left < remaining:
            remaining, binding = left, limit
        lane_wait = 0 if allowed else pacing.wait_ns(earliest, now, pace, hits)
        if not allowed and wait >= 0 and (lane_wait < 0 or lane_wait > wait or rejecting is None):
            rejecting = limit
        wait = -1 if wait < 0 or lane_wait < 0 else max(wait, lane_wait)
        reset = max(reset, earliest + pace.burst_ns - now)
    if rejecting is not None:
        binding = rejecting
    retry = float("inf") if wait < 0 else wait / NS_PER_SECOND
    return Decision(allowed, remaining, retry, reset / NS_PER_SECOND, binding)
