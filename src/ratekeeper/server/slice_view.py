"""The assignment a cluster member holds: its ownership at the gate, its load, its recent past.

:class:`SliceView` is pure (no IO, no clock: time is passed in) and lives on the event loop. It
is the :class:`~ratekeeper.protocol.ownership.MeteredOwnership` of the member's
:class:`~ratekeeper.protocol.ownership.StoreGate`: for each counter the gate applies it finds the
slice by a bisect over the slice starts, adds the counter's hits to that slice's tally and says
whether the member owns it. :meth:`SliceView.take_load` turns the tallies of the owned slices
into hits per second since the previous call (what a heartbeat carries). The last few
assignments are kept, so a caller a few generations behind (a Watch, a report) is sent a diff.

Before the first assignment the view owns every key: nothing is known to belong elsewhere, and
nothing is counted as misdirected.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict

from ratekeeper.core.assignment import pieces
from ratekeeper.core.assignment_diff import Update, update_for
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation, Slice

__all__ = ["SliceLoad", "SliceView"]

#: One owned slice and the hits per second it took.
SliceLoad = tuple[Slice, float]


class SliceView:
    """The held assignment as ownership and load; see the module docstring. Event loop only."""

    def __init__(self, address: str = "", history: int = 8) -> None:
        """``address``: this member's name in assignments (may be bound later, :meth:`bind`);
        ``history``: how many past assignments are kept for diffs."""
        self._address = address
        self._history: OrderedDict[Generation, Assignment] = OrderedDict()
        self._keep = max(1, history)
        #: The assignment held (``None``: none yet).
        self.assignment: Assignment | None = None
        self._starts: tuple[int, ...] = ()
        self._mine: tuple[bool, ...] = ()
        self._hits: list[int] = []
        self._since = 0

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

        The tallies restart: load is measured per slice of the assignment held."""
        before = self.assignment
        self.assignment = assignment
        self._history[assignment.generation] = assignment
        self._history.move_to_end(assignment.generation)
        while len(self._history) > self._keep:
            self._history.popitem(last=False)
        self._since = now
        self._index()
        return before

    def take_load(self, now: int) -> tuple[SliceLoad, ...]:
        """Hits per second of each owned slice since the previous call (or :meth:`hold`)."""
        if self.assignment is None:
            return ()
        elapsed = max(1, now - self._since)
        load = tuple(
            (piece, self._hits[i] * NS_PER_SECOND / elapsed)
            for i, (piece, _) in enumerate(pieces(self.assignment))
            if self._mine[i]
        )
        self._hits = [0] * len(self._hits)
        self._since = now
        return load

    def update_for(self, known: Generation | None) -> Update | None:
        """What a party holding ``known`` should be sent: ``None`` when it is not behind (or
        nothing is held), a diff from a recent generation, else the whole assignment."""
        held = self.assignment
        if held is None or (known is not None and known >= held.generation):
            return None
        return update_for(known, held, self._history)

    def _index(self) -> None:
        held = self.assignment
        if held is None:
            return
        self._starts = held.starts
        self._mine = tuple(owner == self._address for owner in held.owners)
        self._hits = [0] * len(held.starts)
