"""Building, comparing and ordering assignments, as plain functions over the values in ``slices``.

An :class:`~ratekeeper.core.slices.Assignment` is stored as aligned ``starts`` and ``owners``; the
functions here look at it as *pieces*, ``(Slice, owner)`` pairs in hash order, which is the shape
the rebalancer, the diff and the hand-off all work in. :func:`moves` answers the hand-off's
question — which ranges changed owner, from whom to whom — and :func:`adopt` is the gossip rule
every party follows: keep whichever of two assignments has the higher generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice

__all__ = [
    "Move",
    "Piece",
    "adopt",
    "coalesced",
    "from_pieces",
    "moves",
    "next_generation",
    "pieces",
    "same_layout",
    "width",
]

#: One slice and the address that owns it.
Piece = tuple[Slice, str]


@dataclass(frozen=True, slots=True)
class Move:
    """A range of the hash space whose owner changed between two assignments."""

    #: The range that moved; maximal, so two adjacent moves never share source and target.
    slice: Slice
    #: The owner before; the party that hands the range's counters off.
    source: str
    #: The owner after; the party that imports them.
    target: str


def width(piece: Slice) -> int:
    """How many hashes ``piece`` holds."""
    return piece.high - piece.low


def pieces(assignment: Assignment) -> tuple[Piece, ...]:
    """Every slice of ``assignment`` with its owner, in hash order."""
    ends = (*assignment.starts[1:], HASH_SPACE)
    return tuple(
        (Slice(low, high), owner)
        for low, high, owner in zip(assignment.starts, ends, assignment.owners, strict=True)
    )


def from_pieces(generation: Generation, owned: Iterable[Piece]) -> Assignment:
    """The assignment made of ``owned``, which must tile the hash space exactly once.

    The pieces may come in any order. A gap, an overlap or an empty slice is refused with a
    :class:`ValueError` naming the first offending range, so a bad diff or a bad wire message
    never turns into an assignment that silently drops or doubles keys.
    """
    ordered = sorted(owned, key=lambda p: p[0].low)
    if not ordered:
        raise ValueError("an assignment needs at least one slice")
    for piece, _ in ordered:
        if piece.low >= piece.high:
            raise ValueError(f"slice [{piece.low}, {piece.high}) is empty")
    if ordered[0][0].low != 0:
        raise ValueError(f"hashes [0, {ordered[0][0].low}) have no owner")
    if ordered[-1][0].high != HASH_SPACE:
        raise ValueError(f"hashes [{ordered[-1][0].high}, 2**64) have no owner")
    for (a, _), (b, _) in pairwise(ordered):
        if a.high < b.low:
            raise ValueError(f"hashes [{a.high}, {b.low}) have no owner")
        if a.high > b.low:
            raise ValueError(f"hashes [{b.low}, {min(a.high, b.high)}) have two owners")
    return Assignment(
        generation, tuple(p.low for p, _ in ordered), tuple(owner for _, owner in ordered)
    )


def coalesced(assignment: Assignment) -> Assignment:
    """``assignment`` with neighbouring slices of one owner joined (same routing, fewer slices)."""
    starts: list[int] = []
    owners: list[str] = []
    for start, owner in zip(assignment.starts, assignment.owners, strict=True):
        if not owners or owners[-1] != owner:
            starts.append(start)
            owners.append(owner)
    return Assignment(assignment.generation, tuple(starts), tuple(owners))


def same_layout(a: Assignment, b: Assignment) -> bool:
    """Whether ``a`` and ``b`` cut and own the space identically, whatever their generations."""
    return a.starts == b.starts and a.owners == b.owners


def moves(before: Assignment, after: Assignment) -> tuple[Move, ...]:
    """The ranges whose owner differs between ``before`` and ``after``, in hash order.

    Slice boundaries that changed without a change of owner (a split or a merge) are not moves:
    nothing needs handing off for them.
    """
    cuts = sorted({*before.starts, *after.starts})
    found: list[Move] = []
    for low, high in zip(cuts, (*cuts[1:], HASH_SPACE), strict=True):
        source, target = before.owner_of(low), after.owner_of(low)
        if source == target:
            continue
        last = found[-1] if found else None
        if last and last.slice.high == low and (last.source, last.target) == (source, target):
            found[-1] = Move(Slice(last.slice.low, high), source, target)
        else:
            found.append(Move(Slice(low, high), source, target))
    return tuple(found)


def next_generation(generation: Generation) -> Generation:
    """The generation that follows ``generation`` within the same assigner incarnation."""
    return Generation(generation.incarnation, generation.number + 1)


def adopt(held: Assignment | None, seen: Assignment) -> Assignment:
    """The assignment to keep after seeing ``seen``: the one with the higher generation.

    Ties keep ``held``: an equal generation from the same assigner names the same assignment,
    and keeping the held object spares callers a rebuild of anything derived from it.
    """
    if held is None or seen.generation > held.generation:
        return seen
    return held
