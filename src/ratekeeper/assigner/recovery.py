"""What a restarted assigner rebuilds from heartbeats: the assignment the members hold.

The assigner's state is soft. After a restart it knows nothing, but every member still holds
its assignment and says so in each heartbeat: the generation it holds (``known``) and a load
entry for every slice it owns. The members that hold the newest generation therefore describe
that assignment between them. Starting from it, rather than from an even split, keeps every key
where it is: a restart of the assigner moves nothing but the slices of members that did not
report. Those ranges are left to :data:`NOBODY`, so the first round reassigns them like the
slices of a departed member.

If the reports do not fit together (two members claim one range, say) there is nothing to
rebuild, and the assigner falls back to an even split.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from ratekeeper.assigner.members import Member
from ratekeeper.core.assignment import Piece, from_pieces
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice

__all__ = ["NOBODY", "newest_known", "recovered"]

#: The owner of ranges no reporting member holds: no member has this address.
NOBODY = ""


def newest_known(members: Iterable[Member]) -> Generation | None:
    """The newest generation any member says it holds."""
    return max((m.known for m in members if m.known is not None), default=None)


def recovered(members: Iterable[Member]) -> Assignment | None:
    """The assignment of the newest generation the members hold, rebuilt from their load
    entries, with ranges nobody reported owned by :data:`NOBODY`; ``None`` when nothing fits."""
    listed = tuple(members)
    newest = newest_known(listed)
    if newest is None:
        return None
    owned = sorted(
        ((piece, m.address) for m in listed if m.known == newest for piece, _ in m.load),
        key=lambda p: p[0].low,
    )
    if not owned:
        return None
    gaps: list[Piece] = []
    edges = [Slice(0, 0), *(p for p, _ in owned), Slice(HASH_SPACE, HASH_SPACE)]
    for before, after in pairwise(edges):
        if before.high < after.low:
            gaps.append((Slice(before.high, after.low), NOBODY))
    try:
        return from_pieces(newest, [*owned, *gaps])
    except ValueError:
        return None
