"""The assignment a cluster member holds: its ownership at the gate, its load, its recent past.

:class:`SliceView` is pure (no IO, no clock: time is passed in) and lives on the event loop. It
is the :class:`~ratekeeper.protocol.ownership.MeteredOwnership` of the member's
:class:`~ratekeeper.protocol.ownership.StoreGate`: for each counter the gate applies it finds the
slice by a bisect over the slice starts, adds the counter's hits to that slice's tally and says
whether the member owns it.

:meth:`SliceView.take_load` turns the tallies into hits per second per slice (what a heartbeat
carries), as an exponential moving average with time constant ``window_ns``: one heartbeat
interval alone is too spiky to balance on (a client's report falls in it or just outside). The
average is linear, and the assigner sums the load every member reports over each range, so the
load is measured where the hits are applied, whoever owns them: a member reports its owned
slices and also any other slice it applied hits on (misdirected, from clients still routing by
an older assignment) while that average is not negligible. When ownership moves, the new
owner's rising average and the old owner's decaying one add up to the range's load, so the
rebalancer never sees a moved slice as cold. On a new assignment each slice keeps what was
measured on the slices it overlaps, in proportion to width (uniform keys within a slice).

The last few assignments are kept, so a caller a few generations behind (a Watch, a report) is
sent a diff.

Before the first assignment the view owns every key: nothing is known to belong elsewhere, and
nothing is counted as misdirected.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict

from ratekeeper.core.assignment import Piece, pieces, width
from ratekeeper.core.assignment_diff import Update, update_for
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation, Slice

__all__ = ["MIN_REPORTED_RATE", "SliceLoad", "SliceView"]

#: One slice and the hits per second it took.
SliceLoad = tuple[Slice, float]

#: A slice this member does not own is reported while its average is at least this (hits/s).
MIN_REPORTED_RATE = 0.01


class SliceView:
    """The held assignment as ownership and load; see the module docstring. Event loop only."""

    def __init__(
        self, address: str = "", history: int = 8, window_ns: int = 5 * NS_PER_SECOND
    ) -> None:
        """``address``: this member's name in assignments (may be bound later, :meth:`bind`);
        ``history``: how many past assignments are kept for diffs; ``window_ns``: how long the
        reported load is averaged over."""
        self._address = address
        self._history: OrderedDict[Generation, Assignment] = OrderedDict()
        self._keep = max(1, history)
        #: The assignment held (``None``: none yet).
        self.assignment: Assignment | None = None
        self._starts: tuple[int, ...] = ()
        self._mine: tuple[bool, ...] = ()
        self._hits: list[int] = []
        self._since = 0
        self._window = max(1, window_ns)
        #: Per slice of the held assignment: the averaged rate (hits/s).
        self._rates: list[float] = []

    @property
    def address(self) -> str:
        """This member's name in assignments (its advertised ``host:port``)."""
        return self._address

    @property
    def generation(self) -> Generation | None:
        """The generation held (``None``: none yet)."""
        return None if self.assignment is None else self.assignment.generation

    def bind(self, address: str) -> None:
        """Name this member ``address`` (known once its port is bound)."""
        self._address = address
        self._index()

    def owns(self, key_hash: int) -> bool:
        """Whether the held assignment gives ``key_hash`` to this member (true before any)."""
        if not self._starts:
            return True
        return self._mine[bisect.bisect_right(self._starts, key_hash) - 1]

    def charge(self, key_hash: int, hits: int) -> bool:
        """Add ``hits`` to the tally of ``key_hash``'s slice; whether this member owns it."""
        if not self._starts:
            return True
        i = bisect.bisect_right(self._starts, key_hash) - 1
        self._hits[i] += hits
        return self._mine[i]

    def owned(self) -> tuple[Slice, ...]:
        """The slices this member owns in the held assignment."""
        if self.assignment is None:
            return ()
        return self.assignment.slices_of(self._address)

    def hold(self, assignment: Assignment, now: int) -> Assignment | None:
        """Hold ``assignment`` from ``now`` (ns, any monotonic clock); the one held before.

        What was measured carries over, by overlap width (see the module docstring)."""
        before = self.assignment
        if before is not None:
            self._advance(now)
            rates = _carried(pieces(before), self._rates, pieces(assignment))
        else:
            rates = [0.0] * len(assignment.starts)
        self.assignment = assignment
        self._history[assignment.generation] = assignment
        self._history.move_to_end(assignment.generation)
        while len(self._history) > self._keep:
            self._history.popitem(last=False)
        self._since = now
        self._index()
        self._rates = rates
        return before

    def take_load(self, now: int) -> tuple[SliceLoad, ...]:
        """Hits per second averaged (see the module docstring) of every owned slice, and of
        every other slice whose average is at least :data:`MIN_REPORTED_RATE`."""
        if self.assignment is None:
            return ()
        self._advance(now)
        return tuple(
            (piece, rate)
            for (piece, _), rate, mine in zip(
                pieces(self.assignment), self._rates, self._mine, strict=True
            )
            if mine or rate >= MIN_REPORTED_RATE
        )

    def _advance(self, now: int) -> None:
        """Fold the tallies since the last fold into the averaged rates."""
        elapsed = now - self._since
        if elapsed <= 0:
            return
        weight = -math.expm1(-elapsed / self._window)  # 1 - e^(-t/window), exact for any t
        per_second = NS_PER_SECOND / elapsed
        for i, hits in enumerate(self._hits):
            self._rates[i] += weight * (hits * per_second - self._rates[i])
        self._hits = [0] * len(self._hits)
        self._since = now

    def update_for(self, known: Generation | None) -> Update | None:
        """What a party holding ``known`` should be sent: ``None`` when it is not behind (or
        nothing is held), a diff from a recent generation, else the whole assignment."""
        held = self.assignment
        if held is None or (known is not None and known >= held.generation):
            return None
        return update_for(known, held, self._history)

    def _index(self) -> None:
        # (re)derived from the held assignment and the address; the tallies restart
        held = self.assignment
        if held is None:
            return
        self._starts = held.starts
        self._mine = tuple(owner == self._address for owner in held.owners)
        self._hits = [0] * len(held.starts)


def _carried(old: tuple[Piece, ...], rates: list[float], new: tuple[Piece, ...]) -> list[float]:
    """Rates for the slices of ``new``: each the rates of the ``old`` slices it overlaps, in
    proportion to the overlap's width."""
    out: list[float] = []
    j = 0
    for piece, _ in new:
        while old[j][0].high <= piece.low:
            j += 1
        rate, k = 0.0, j
        while k < len(old) and old[k][0].low < piece.high:
            held = old[k][0]
            overlap = min(held.high, piece.high) - max(held.low, piece.low)
            rate += rates[k] * overlap / width(held)
            k += 1
        out.append(rate)
    return out
