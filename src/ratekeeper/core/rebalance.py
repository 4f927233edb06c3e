"""Rebalancing: the next assignment from the current one, the healthy servers and the load.

One round, in order:

1. **Split** every slice hotter than ``split_fraction`` of the mean server load, at the reported
   boundaries inside it where there are some (so a hot key reported alone ends up alone), else in
   the middle of its hashes. A split moves nothing: both halves stay with the owner.
2. **Reassign** the slices of servers that are not healthy (departed, or TERMINATING and being
   drained), heaviest first, each onto the server that is then least loaded.
3. **Balance**: while the most loaded server is above ``mean × (1 + tolerance)`` or the least
   loaded is below ``mean × (1 - tolerance)``, move one slice from the first to the second. The
   slice is the *lightest* that fixes the violation, or else the heaviest that fits, and it must
   fit: the receiver stays under the upper bound and the giver over the lower one, so a move never
   creates a new violation. Nothing moves while every server is inside the band, and the load
   moved between servers that stay is capped at ``max_moved_fraction`` of the total per round:
   those two rules are the churn penalty, since a moved slice's counters must be handed off.
   Filling a server that joined is not capped, like emptying one that left: membership changes
   must take effect in one round. When no slice fits, the lightest slice too big to move is split
   in two and the round goes on; when it cannot be split (one hot key), the lightest server first
   sheds enough of its own slices to servers with room, and then takes it (a swap, in moves).
4. **Merge** neighbouring slices of one owner while their joint load stays under
   ``merge_fraction`` of the mean, so the slice count tracks the load, not the history. Merging
   stays well below the split threshold, so a merged slice is not split again next round. Then,
   if there are more than ``max_slices_per_server`` slices per server, join the coldest pairs
   of neighbours even across owners (moving the colder one, charged like any move).

Every choice breaks ties by load, then hash position or address, so the same inputs always give
the same assignment. With no load reported at all, load is taken to be proportional to a slice's
width: keys hash uniformly, so that is the best guess, and it spreads a new cluster evenly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise

from ratekeeper.core.assignment import from_pieces, next_generation, pieces, same_layout
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.rebalance_settings import RebalanceSettings, may_reassign, reassign_due_at
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice

__all__ = [
    "RebalanceSettings",
    "Rebalanced",
    "imbalance",
    "may_reassign",
    "reassign_due_at",
    "rebalance",
    "server_loads",
]

#: The load assumed when nobody has reported any: one unit spread evenly over every hash.
_UNIFORM = LoadMap(density=(1.0 / HASH_SPACE,))
_DEFAULTS = RebalanceSettings()


@dataclass(frozen=True, slots=True)
class Rebalanced:
    """The outcome of one round."""

    #: The next assignment; the current one itself (same generation) when nothing changed.
    assignment: Assignment
    #: Load moved between servers that stay: the churn the round chose, capped by the settings.
    moved: float
    #: Load taken from servers that are not healthy: churn the round had no choice about.
    reassigned: float
    #: Load moved onto servers new to the assignment: churn that membership asked for.
    filled: float
    #: Load over the whole space, as the round saw it.
    total: float
    #: Slices cut in two.
    splits: int
    #: Pairs of slices joined.
    merges: int


class _Piece:
    """A slice under construction: the round's mutable working copy."""

    __slots__ = ("high", "load", "low", "moved", "owner")

    def __init__(self, low: int, high: int, owner: str, load: float, moved: bool = False) -> None:
        self.low = low
        self.high = high
        self.owner = owner
        self.load = load
        #: Moved already this round; a slice moves at most once per round.
        self.moved = moved


def rebalance(
    current: Assignment,
    healthy: Collection[str],
    load: LoadMap,
    settings: RebalanceSettings = _DEFAULTS,
    generation: Generation | None = None,
) -> Rebalanced:
    """One round of rebalancing (see the module docstring).

    ``healthy`` are the servers that may own slices (RUNNING ones: a NOT_READY server should not
    take slices yet, a TERMINATING one is being drained); servers of ``current`` not among them
    lose everything. ``generation`` names the new assignment, by default the one after
    ``current``'s.
    """
    servers = sorted(set(healthy))
    if not servers:
        raise ValueError("rebalancing needs at least one healthy server")
    seen = load if load.total > 0 else _UNIFORM
    round_ = _Round(servers, seen, settings, set(servers) - current.servers)
    for piece, owner in pieces(current):
        round_.add_split(_Piece(piece.low, piece.high, owner, seen.load_in(piece)))
    round_.reassign_orphans()
    round_.balance()
    merged = round_.merged()
    if generation is None:
        generation = next_generation(current.generation)
    out = from_pieces(generation, ((Slice(p.low, p.high), p.owner) for p in merged))
    if same_layout(out, current):
        return Rebalanced(current, 0.0, 0.0, 0.0, load.total, 0, 0)
    scale = load.total / seen.total  # report in the caller's units even under the uniform guess
    return Rebalanced(
        out,
        round_.moved * scale,
        round_.reassigned * scale,
        round_.filled * scale,
        load.total,
        round_.splits,
        round_.merges,
    )


class _Round:
    """The working state of one call to :func:`rebalance`."""

    def __init__(
        self, servers: list[str], load: LoadMap, settings: RebalanceSettings, new: set[str]
    ) -> None:
        self.servers = servers
        #: Servers that own nothing yet: filling them is not charged to the move budget.
        self.new = new
        self.map = load
        self.settings = settings
        self.mean = load.total / len(servers)
        self.upper = self.mean * (1 + settings.tolerance)
        self.lower = self.mean * (1 - settings.tolerance)
        self.budget = settings.max_moved_fraction * load.total
        self.loads = dict.fromkeys(servers, 0.0)
        self.held: dict[str, list[_Piece]] = {s: [] for s in servers}
        self.orphans: list[_Piece] = []
        self.moved = 0.0
        self.reassigned = 0.0
        self.filled = 0.0
        self.splits = 0
        self.merges = 0

    def add_split(self, piece: _Piece) -> None:
        """Take ``piece`` from the current assignment, split as finely as its load asks."""
        threshold = self.settings.split_fraction * self.mean
        stack = [piece]
        while stack:
            p = stack.pop()
            if p.load > threshold and p.high - p.low >= 2:
                # right half first onto the stack, so pieces come off it in hash order
                left, right = self.halves(p)
                stack += (right, left)
                self.splits += 1
            elif p.owner in self.loads:
                self.take(p, p.owner)
            else:
                self.orphans.append(p)

    def halves(self, p: _Piece) -> tuple[_Piece, _Piece]:
        """``p`` cut where its halves' loads come closest: at a reported bound or the middle."""
        half = self.map.below(p.low) + p.load / 2
        cuts = (*self.map.cuts_in(Slice(p.low, p.high)), (p.low + p.high) // 2)
        at = min(cuts, key=lambda c: (abs(self.map.below(c) - half), c))
        left = self.map.load_in(Slice(p.low, at))
        right = max(0.0, p.load - left)
        return (
            _Piece(p.low, at, p.owner, left, p.moved),
            _Piece(at, p.high, p.owner, right, p.moved),
        )

    def take(self, p: _Piece, server: str) -> None:
        p.owner = server
        self.held[server].append(p)
        self.loads[server] += p.load

    def give(self, p: _Piece, server: str) -> None:
        self.held[p.owner].remove(p)
        self.loads[p.owner] -= p.load
        self.take(p, server)

    def lightest(self) -> str:
        # fewest slices next, so weightless slices (no load anywhere) still spread out
        return min(self.servers, key=lambda s: (self.loads[s], len(self.held[s]), s))

    def reassign_orphans(self) -> None:
        for p in sorted(self.orphans, key=lambda p: (-p.load, p.low)):
            p.moved = True
            self.take(p, self.lightest())
            self.reassigned += p.load

    def balance(self) -> None:
        stuck: set[str] = set()
        # Each pass moves a slice, splits one or gives up on a server; this bounds the passes
        # generously without letting a bug spin forever.
        for _ in range(64 * (sum(map(len, self.held.values())) + len(self.servers))):
            donors = [s for s in self.servers if s not in stuck]
            receiver = self.lightest()
            room_left = float("inf") if receiver in self.new else self.budget - self.moved
            if room_left <= 0 or not donors:
                return
            donor = max(donors, key=lambda s: (self.loads[s], s))
            over = self.loads[donor] - self.upper
            under = self.lower - self.loads[receiver]
            if (over <= 0 and under <= 0) or donor == receiver:
                return
            room = min(self.upper - self.loads[receiver], self.loads[donor] - self.lower, room_left)
            if self.move_one(donor, receiver, room, max(over, under)):
                continue
            if over <= 0 or not self.make_room(donor):
                stuck.add(donor)

    def shift(self, p: _Piece, server: str) -> None:
        """Move ``p`` to ``server`` and charge it: as filling if ``server`` is new, else a move."""
        p.moved = True
        if server in self.new:
            self.filled += p.load
        else:
            self.moved += p.load
        self.give(p, server)

    def move_one(self, donor: str, receiver: str, room: float, need: float) -> bool:
        """Move, or split to make movable, one slice of ``donor``; ``False`` if neither can be."""
        movable = [p for p in self.held[donor] if not p.moved]
        fits = [p for p in movable if 0 < p.load <= room]
        if fits:
            enough = [p for p in fits if p.load >= need]
            pick = (
                min(enough, key=lambda p: (p.load, p.low))
                if enough
                else max(fits, key=lambda p: (p.load, -p.low))
            )
            self.shift(pick, receiver)
            return True
        # Cutting a slice finer than the merge threshold to fill a sliver of room would only
        # make crumbs that the merge pass joins again.
        grain = self.settings.merge_fraction * self.mean
        too_big = [p for p in movable if p.load > room and p.high - p.low >= 2]
        if room < grain or not too_big:
            return False
        victim = min(too_big, key=lambda p: (p.load, p.low))
        self.held[donor].remove(victim)
        self.loads[donor] -= victim.load
        for half in self.halves(victim):
            self.take(half, donor)
        self.splits += 1
        return True

    def make_room(self, donor: str) -> bool:
        """Move a slice too big for anyone's room, after emptying part of the lightest server.

        A server left over the band with only slices bigger than any other server's room (two
        hot keys together, say) cannot shed by single moves. Moving enough of the lightest
        server's own slices to servers that have room, and then the big slice to it, can: a
        swap in several moves, all charged to the budget. ``False`` if no such plan fits.
        """
        over = self.loads[donor] - self.upper
        big = [p for p in self.held[donor] if not p.moved and 0 < p.load <= self.upper]
        enough = [p for p in big if p.load >= over]
        if enough:
            pick = min(enough, key=lambda p: (p.load, p.low))
        elif big:
            pick = max(big, key=lambda p: (p.load, -p.low))
        else:
            return False
        others = [s for s in self.servers if s != donor]
        if not others:
            return False
        receiver = min(others, key=lambda s: (self.loads[s], len(self.held[s]), s))
        to_free = self.loads[receiver] + pick.load - self.upper
        # the donor itself can take some back, once the big slice has left it
        trial = {s: self.loads[s] for s in others if s != receiver}
        trial[donor] = self.loads[donor] - pick.load
        plan: list[tuple[_Piece, str]] = []
        movable = (p for p in self.held[receiver] if not p.moved and p.load > 0)
        for p in sorted(movable, key=lambda p: (-p.load, p.low)):
            if to_free <= 0:
                break
            fitting = [s for s in trial if trial[s] + p.load <= self.upper]
            if fitting:
                target = min(fitting, key=lambda s: (trial[s], s))
                plan.append((p, target))
                trial[target] += p.load
                to_free -= p.load
        charged = sum(p.load for p, s in [*plan, (pick, receiver)] if s not in self.new)
        if to_free > 0 or self.moved + charged > self.budget:
            return False
        for p, target in plan:
            self.shift(p, target)
        self.shift(pick, receiver)
        return True

    def merged(self) -> list[_Piece]:
        """Every piece in hash order, cold neighbours of one owner joined."""
        limit = self.settings.merge_fraction * self.mean
        out: list[_Piece] = []
        for p in sorted((p for ps in self.held.values() for p in ps), key=lambda p: p.low):
            last = out[-1] if out else None
            if last and last.owner == p.owner and last.load + p.load <= limit:
                last.high = p.high
                last.load += p.load
                last.moved = last.moved or p.moved  # so a moved part never moves twice
                self.merges += 1
            else:
                out.append(p)
        return self.capped(out)

    def capped(self, ordered: list[_Piece]) -> list[_Piece]:
        """``ordered`` with its coldest neighbours joined while there are too many slices.

        Moves fragment the space (neighbours of two owners never join above), so without a cap
        the count creeps up round after round. A pair of two owners joins by moving the colder
        slice to the other owner: that is churn, so it is charged like a move, and must fit.
        """
        excess = len(ordered) - self.settings.max_slices_per_server * len(self.servers)
        limit = self.settings.split_fraction * self.mean  # joined, it must not split again
        joint = [a.load + b.load for a, b in pairwise(ordered)]
        absorbed: set[int] = set()
        for i in sorted(range(len(joint)), key=lambda i: (joint[i], ordered[i].low)):
            if excess <= 0 or joint[i] > limit:
                break
            a, b = ordered[i], ordered[i + 1]
            # a slice absorbed into its left neighbour is gone; its pairs wait for next round
            if i in absorbed or i + 1 in absorbed or a.load + b.load > limit:
                continue
            # the colder one moves; of two as cold, the one whose move helps the balance
            cold, warm = sorted((a, b), key=lambda p: (p.load, -self.loads[p.owner]))
            if a.owner != b.owner and not self.join(cold, warm):
                continue
            a.high, a.load = b.high, a.load + b.load
            absorbed.add(i + 1)
            excess -= 1
            self.merges += 1
        return [p for i, p in enumerate(ordered) if i not in absorbed]

    def join(self, cold: _Piece, warm: _Piece) -> bool:
        """Move ``cold`` to the owner of ``warm`` if it may move and fits; whether it did."""
        charged = warm.owner not in self.new
        if cold.moved or self.loads[warm.owner] + cold.load > self.upper:
            return False
        if self.loads[cold.owner] - cold.load < self.lower:
            return False
        if charged and self.moved + cold.load > self.budget:
            return False
        self.loads[cold.owner] -= cold.load
        self.loads[warm.owner] += cold.load
        if charged:
            self.moved += cold.load
        else:
            self.filled += cold.load
        cold.owner = warm.owner
        cold.moved = warm.moved = True  # the joined slice has now moved, in part
        return True


def server_loads(
    assignment: Assignment, load: LoadMap, servers: Collection[str] = ()
) -> dict[str, float]:
    """The load each server carries under ``assignment``; ``servers`` adds owners of nothing."""
    loads = dict.fromkeys(sorted({*servers, *assignment.servers}), 0.0)
    for piece, owner in pieces(assignment):
        loads[owner] += load.load_in(piece)
    return loads


def imbalance(assignment: Assignment, load: LoadMap, servers: Collection[str] = ()) -> float:
    """The most loaded server's load over the mean (``1.0`` is perfect balance, or no load)."""
    loads = server_loads(assignment, load, servers)
    mean = sum(loads.values()) / len(loads)
    return max(loads.values()) / mean if mean > 0 else 1.0
