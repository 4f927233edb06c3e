"""Counter state between processes: instants out as ages, back on the importer's clock, and the
stricter of two states for a counter both sides hold.

A :class:`~ratekeeper.backends.store.CounterSnapshot` holds a core state's fields in the order
:attr:`Strategy.pack <ratekeeper.core.algorithms.Strategy.pack>` gives them, with every instant
written as an age, nanoseconds before the exporter's ``now``; the importer rebuilds each instant
as its own ``now`` minus that age, so the two processes share no clock:

* token bucket ``(level, updated_at)`` travels as ``(level, age of updated_at)``;
* fixed window ``(start_s, count)`` and sliding window ``(start_s, current, previous)`` travel
  with the age of the window's start *measured from the start of the exporter's current
  window* (a whole number of periods), in ns, in place of ``start_s``. The importer counts the
  same number of windows back from its own current window, so counts of the exporter's current
  window land in the importer's current window whatever phase the two clocks disagree by: a
  hand-off never rolls a window over early (which would hand its quota back); at worst the
  counts are kept for up to one period longer than the exporter would have.

Everything here is pure, and works on the core's state objects.
"""

from __future__ import annotations

from dataclasses import fields

from ratekeeper.core.algorithms import STRATEGIES, State
from ratekeeper.core.fixed_window import FixedWindow
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, window_start
from ratekeeper.core.sliding_window import SlidingWindow
from ratekeeper.core.token_bucket import TokenBucket, refill

__all__ = ["aged", "restored", "stricter"]

#: How many fields each algorithm's state has: a snapshot's state must have as many.
_WIDTH = {
    Algorithm.TOKEN_BUCKET: len(fields(TokenBucket)),
    Algorithm.FIXED_WINDOW: len(fields(FixedWindow)),
    Algorithm.SLIDING_WINDOW: len(fields(SlidingWindow)),
}


def aged(limit: Limit, packed: tuple[int, ...], now: int) -> tuple[int, ...]:
    """A packed state with its instant written as an age before ``now`` (ns)."""
    if limit.algorithm is Algorithm.TOKEN_BUCKET:
        level, updated_at = packed
        return (level, now - updated_at)
    start_s, *counts = packed
    return ((window_start(limit, now) - start_s) * NS_PER_SECOND, *counts)


def restored(limit: Limit, state: tuple[int, ...], now: int) -> State:
    """The core state an :func:`aged` tuple stands for, on the clock whose instant is ``now``.

    Raises :class:`ValueError` when ``state`` has not the fields of ``limit``'s algorithm (a
    snapshot from a different version, or not one at all).
    """
    width = _WIDTH[limit.algorithm]
    if len(state) != width or not all(type(v) is int for v in state):
        raise ValueError(f"a {limit.algorithm.value} state is {width} integers, got {state!r}")
    if limit.algorithm is Algorithm.TOKEN_BUCKET:
        level, age = state
        return TokenBucket(level, now - age)
    age, *counts = state
    # Whole periods back from this clock's current window (see the module docstring).
    periods_back = -(-age // limit.period_ns)
    start_s = window_start(limit, now) - periods_back * limit.period_s
    if limit.algorithm is Algorithm.FIXED_WINDOW:
        return FixedWindow(start_s, *counts)
    return SlidingWindow(start_s, *counts)


def stricter(limit: Limit, mine: State, theirs: State, now: int) -> State:
    """The stricter of two states of one counter under ``limit``: one that admits no more, now
    or later, than either would. May modify both and return one of them.

    * Token buckets: both refilled to the same instant (``now``, or the later of their own
      clocks if one ran ahead), the lower level; from there they refill alike, so it stays the
      lower.
    * Windows: both rolled to ``now``; if they then count in the same window, the larger of each
      count (every hit either side counted stays counted); if not (a clock ran ahead), the newer
      window, as the algorithms themselves keep the newer counts when a clock steps back.
    """
    if type(mine) is not type(theirs):
        raise TypeError(f"states of different algorithms: {mine!r}, {theirs!r}")
    if isinstance(mine, TokenBucket) and isinstance(theirs, TokenBucket):
        at = max(now, mine.updated_at, theirs.updated_at)
        refill(mine, limit, at)
        refill(theirs, limit, at)
        return mine if mine.level <= theirs.level else theirs
    check = STRATEGIES[limit.algorithm].hit
    check(mine, limit, now, 0)
    check(theirs, limit, now, 0)
    if isinstance(mine, FixedWindow) and isinstance(theirs, FixedWindow):
        if mine.start_s != theirs.start_s:
            return mine if mine.start_s > theirs.start_s else theirs
        return FixedWindow(mine.start_s, max(mine.count, theirs.count))
    if isinstance(mine, SlidingWindow) and isinstance(theirs, SlidingWindow):
        if mine.start_s != theirs.start_s:
            return mine if mine.start_s > theirs.start_s else theirs
        current = max(mine.current, theirs.current)
        return SlidingWindow(mine.start_s, current, max(mine.previous, theirs.previous))
    raise TypeError(f"not a state of {limit.algorithm.value}: {mine!r}")
