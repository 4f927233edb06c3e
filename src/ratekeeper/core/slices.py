"""Slices of the 64-bit key-hash space and their assignment to servers.

The hash space ``[0, 2**64)`` is cut into contiguous slices; an :class:`Assignment` maps every
slice to exactly one server and carries a :class:`Generation`, so any party can tell which of
two assignments is newer and adopt it. A rate-limit slice is never replicated: two replicas would
each keep their own bucket and admit twice the policy.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from ratekeeper.core.keys import HASH_BITS

__all__ = ["HASH_SPACE", "Assignment", "Generation", "Slice", "even_split", "single_owner"]

HASH_SPACE = 1 << HASH_BITS


@dataclass(frozen=True, slots=True, order=True)
class Generation:
    """Orders assignments: a new assigner incarnation beats every number of an older one."""

    #: Bumped each time an assigner (re)starts with fresh soft state.
    incarnation: int = 0
    #: Bumped on each assignment change within an incarnation.
    number: int = 0


@dataclass(frozen=True, slots=True)
class Slice:
    """The half-open hash range ``[low, high)``."""

    low: int
    high: int

    def __contains__(self, key_hash: object) -> bool:
        return isinstance(key_hash, int) and self.low <= key_hash < self.high


@dataclass(frozen=True, slots=True)
class Assignment:
    """Every slice of the hash space mapped to one server address."""

    #: Which assignment this is; higher wins.
    generation: Generation
    #: Start of each slice, ascending; the first is 0 and each slice ends where the next starts.
    starts: tuple[int, ...]
    #: Owner address of each slice, aligned with ``starts``.
    owners: tuple[str, ...]
    _index: dict[str, tuple[Slice, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.starts or self.starts[0] != 0:
            raise ValueError("an assignment must cover the hash space from 0")
        if len(self.starts) != len(self.owners):
            raise ValueError("starts and owners must align")
        if any(b <= a for a, b in zip(self.starts, self.starts[1:], strict=False)):
            raise ValueError("slice starts must be strictly ascending")
        if self.starts[-1] >= HASH_SPACE:
            raise ValueError("slice starts must lie in the 64-bit hash space")
        index: dict[str, list[Slice]] = {}
        for i, owner in enumerate(self.owners):
            high = self.starts[i + 1] if i + 1 < len(self.starts) else HASH_SPACE
            index.setdefault(owner, []).append(Slice(self.starts[i], high))
        object.__setattr__(self, "_index", {o: tuple(s) for o, s in index.items()})

    def owner_of(self, key_hash: int) -> str:
        """The address of the server owning ``key_hash``."""
        if not 0 <= key_hash < HASH_SPACE:
            # bisect would silently hand an out-of-range hash to the last slice
            raise ValueError(f"key hash {key_hash} is outside [0, 2**64)")
        return self.owners[bisect.bisect_right(self.starts, key_hash) - 1]

    def slices_of(self, owner: str) -> tuple[Slice, ...]:
        """The slices ``owner`` holds (empty if it holds none)."""
        return self._index.get(owner, ())

    @property
    def servers(self) -> frozenset[str]:
        """Every address that owns at least one slice."""
        return frozenset(self.owners)


def single_owner(address: str, generation: Generation = Generation()) -> Assignment:
    """The whole hash space on one server (the one-replica deployment)."""
    return Assignment(generation, (0,), (address,))


def even_split(addresses: Sequence[str], generation: Generation = Generation()) -> Assignment:
    """The hash space cut into ``len(addresses)`` equal slices, owned in the given order."""
    if not addresses:
        raise ValueError("at least one server address is required")
    n = len(addresses)
    return Assignment(generation, tuple((i << HASH_BITS) // n for i in range(n)), tuple(addresses))
