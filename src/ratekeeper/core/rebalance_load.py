"""Load over the hash space, as the assigner learns it from the servers' reports.

Each server reports a load per slice it holds (and may add narrow entries for its hottest keys).
A :class:`LoadMap` sums those entries: load is additive, so two servers that both reported a range
(around a change of owner) both served it, and an entry for a hot key inside a reported slice adds
to it. Within an entry, load is spread evenly over its hashes, which is all the assigner can know
about it; that is what lets it price a slice whose boundaries differ from the reports, such as a
half of a hot slice it is about to split. Where no entry reaches, the load is zero.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate, pairwise

from ratekeeper.core.slices import HASH_SPACE, Slice

__all__ = ["LoadMap"]


@dataclass(frozen=True, slots=True)
class LoadMap:
    """Load density over the hash space: a piecewise-constant sum of reported entries."""

    #: Where the density changes, ascending, from 0 to the end of the space.
    bounds: tuple[int, ...] = (0, HASH_SPACE)
    #: Load per hash between consecutive bounds, one fewer than ``bounds``.
    density: tuple[float, ...] = (0.0,)
    _below: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.density) + 1 or self.bounds[0] != 0:
            raise ValueError("a load map needs bounds from 0 and one density between each pair")
        if self.bounds[-1] != HASH_SPACE or any(b <= a for a, b in pairwise(self.bounds)):
            raise ValueError("load map bounds must ascend to the end of the hash space")
        if any(d < 0 for d in self.density):
            raise ValueError("load cannot be negative")
        widths = (b - a for a, b in pairwise(self.bounds))
        below = (0.0, *accumulate(d * w for d, w in zip(self.density, widths, strict=True)))
        object.__setattr__(self, "_below", below)

    @classmethod
    def of(cls, entries: Iterable[tuple[Slice, float]]) -> LoadMap:
        """The sum of ``entries``, each a range and the load measured in it."""
        # Exact sums: a hot key's density is many orders above a wide slice's, and float running
        # sums would leave crumbs of it behind where its entry ends.
        change: dict[int, Fraction] = {0: Fraction(0), HASH_SPACE: Fraction(0)}
        for piece, load in entries:
            if not 0 <= piece.low < piece.high <= HASH_SPACE:
                raise ValueError(f"load entry [{piece.low}, {piece.high}) is not a slice")
            if load < 0:
                raise ValueError(f"load entry [{piece.low}, {piece.high}) is negative")
            per_hash = Fraction(load) / (piece.high - piece.low)
            change[piece.low] = change.get(piece.low, Fraction(0)) + per_hash
            change[piece.high] = change.get(piece.high, Fraction(0)) - per_hash
        bounds = sorted(change)
        running = accumulate(change[b] for b in bounds[:-1])
        return cls(tuple(bounds), tuple(float(d) for d in running))

    @property
    def total(self) -> float:
        """The load over the whole space."""
        return self._below[-1]

    def below(self, key_hash: int) -> float:
        """The load of the hashes under ``key_hash``."""
        i = bisect.bisect_right(self.bounds, key_hash) - 1
        if i >= len(self.density):
            return self.total
        return self._below[i] + self.density[i] * (key_hash - self.bounds[i])

    def load_in(self, piece: Slice) -> float:
        """The load of ``piece``."""
        return max(0.0, self.below(piece.high) - self.below(piece.low))

    def cuts_in(self, piece: Slice) -> tuple[int, ...]:
        """The bounds strictly inside ``piece``: where a split can follow the reported shape."""
        lo = bisect.bisect_right(self.bounds, piece.low)
        hi = bisect.bisect_left(self.bounds, piece.high)
        return self.bounds[lo:hi]
