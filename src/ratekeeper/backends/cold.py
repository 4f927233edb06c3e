"""Cold ranges: hash ranges whose new counters start empty, for a store that keeps state itself.

When a server takes over a range of key hashes without the counters its previous owner held
there (the owner crashed, or its hand-off has not arrived yet), a counter created fresh would
hand every key of the range a full burst it may long have spent. So the range is marked *cold*
as of an instant ``since``: a counter created there starts as if it had been emptied at
``since`` — a token bucket at zero tokens then, refilling from then on; a window counted full
in the window holding ``since`` — and learns from the next reports. Once a full refill has
passed since ``since`` such a counter is full again: the mark no longer changes anything.

Pure, and kept per store: :class:`ColdRanges` is a sorted map of disjoint ranges, looked up only
when a counter is created (never on the hot path of a known counter).
"""

from __future__ import annotations

import bisect

from ratekeeper.core.algorithms import STRATEGIES, State
from ratekeeper.core.limits import Limit

__all__ = ["ColdRanges", "emptied"]


def emptied(limit: Limit, since: int) -> State:
    """A state of ``limit`` emptied at ``since``: fresh then, with its whole capacity debited."""
    strategy = STRATEGIES[limit.algorithm]
    state: State = strategy.new(limit, since)
    full = strategy.hit(strategy.new(limit, since), limit, since, 0).remaining
    strategy.debit(state, limit, since, full)
    return state


class ColdRanges:
    """Disjoint hash ranges ``[low, high)``, each cold as of its own instant."""

    def __init__(self, max_ranges: int = 4096) -> None:
        #: Most ranges held; a member marks those it gains and hands off, so a few per slice.
        self.max_ranges = max_ranges
        self._lows: list[int] = []
        self._highs: list[int] = []
        self._since: list[int] = []

    def __bool__(self) -> bool:
        return bool(self._lows)

    def __len__(self) -> int:
        return len(self._lows)

    def since(self, key_hash: int) -> int | None:
        """The instant the range holding ``key_hash`` went cold, or ``None`` if it is not."""
        i = bisect.bisect_right(self._lows, key_hash) - 1
        if i >= 0 and key_hash < self._highs[i]:
            return self._since[i]
        return None

    def within(self, low: int, high: int, now: int) -> tuple[tuple[int, int, int], ...]:
        """The cold parts of ``[low, high)``, each ``(low, high, age)``: its instant as an age
        in ns before ``now`` (never negative)."""
        return tuple(
            (max(lo, low), min(hi, high), max(0, now - at))
            for lo, hi, at in zip(self._lows, self._highs, self._since, strict=True)
            if lo < high and low < hi
        )

    def mark(self, low: int, high: int, since: int | None) -> None:
        """``[low, high)`` is cold as of ``since`` from now on (``None``: no longer cold),
        whatever parts of it were before."""
        ranges = [
            (a, b, at)
            for lo, hi, at in zip(self._lows, self._highs, self._since, strict=True)
            for a, b in _outside(lo, hi, low, high)
        ]
        if since is not None and low < high:
            ranges.append((low, high, since))
        if len(ranges) > self.max_ranges:
            # Bounded: the range cold the longest goes first (its counters have refilled most).
            oldest = min(range(len(ranges)), key=lambda i: ranges[i][2])
            del ranges[oldest]
        ranges.sort()
        self._lows = [r[0] for r in ranges]
        self._highs = [r[1] for r in ranges]
        self._since = [r[2] for r in ranges]


def _outside(lo: int, hi: int, low: int, high: int) -> list[tuple[int, int]]:
    """The parts of ``[lo, hi)`` outside ``[low, high)``."""
    parts = [(lo, min(hi, low)), (max(lo, high), hi)]
    return [(a, b) for a, b in parts if a < b]
