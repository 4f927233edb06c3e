"""A lone in-memory server that finds it was restarted: its new counters start empty for a while.

``ratekeeper serve`` with a memory store and no cluster keeps every counter in its process, so a
restart loses them all, and a counter created afresh hands its key a full burst that the key may
long have spent: the simulator's ``server-restart`` shape (10 clients at 2x a ``50/s`` policy,
the service restarted once) measured about ``b`` more than an exact bucket per restart, on top
of what the clients admitted on their local limiters while it was down (issue 11).

Nothing in the process says whether it is the first or the tenth on its address; its clients
do. A client numbers its reports to each server address from 1 and keeps counting across
failures, so a client whose first report to this process is numbered past 1 was reporting to
an earlier process on this address. :class:`RestartWatch` is the passive machine that turns the
reports' numbers into the store's cold mark (``Store.start_empty``, the mark a cluster member
sets on a range it takes over without its counters: :mod:`ratekeeper.backends.cold`):

* the first report this process sees starts the watch, at ``first``;
* a report from a client first seen here with a number past 1, within ``window_ns`` of
  ``first``, marks the whole hash space cold as of ``first``: a counter created there from then
  on starts emptied at ``first`` and refills at its rate (a bucket at 0 tokens then, a window
  counted full);
* at ``first + window_ns`` the mark is lifted: every client that reported to the previous
  process reports here every cycle, so by then each has reported (its resent backlog too) and
  the keys it still hits have counters; a key first reported later starts full, as before.
  Counters created meanwhile keep their state.

A process whose first clients all number from 1 (a first start, or a fleet that restarted with
it) is never marked. The cost of the mark is bounded and stated in docs/bounds.md (bound 8): a
key first reported within the window is admitted at least its refill since ``first``, so it
loses at most its burst ``b`` to the restart, and only within ``b / r`` of it.

Pure: no clock, no store; :meth:`RestartWatch.observe` says what to mark, its caller marks it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ColdMark", "RestartWatch"]


class ColdMark(NamedTuple):
    """A change to make to the store's cold mark over the whole hash space."""

    #: New counters start emptied at this instant (ns); ``None``: the mark is lifted.
    since: int | None


class RestartWatch:
    """Watches a lone server's first reports for a restart; see the module docstring."""

    __slots__ = ("_cold", "_first", "done", "window_ns")

    def __init__(self, window_ns: int) -> None:
        #: How long after the first report a restart is looked for and the mark held (ns).
        self.window_ns = window_ns
        #: Whether the watch is over (the mark lifted, or the window passed unmarked): the
        #: caller may drop it, and no further report costs a call.
        self.done = window_ns <= 0
        self._first: int | None = None
        self._cold = False

    def observe(self, numbered_elsewhere: bool, now: int) -> ColdMark | None:
        """A report arrives at ``now``; ``numbered_elsewhere``: its client is first seen here
        and numbers it past 1. The change to make to the mark, if any."""
        if self.done:
            return None
        first = self._first
        if first is None:
            first = self._first = now
        if now - first >= self.window_ns:
            self.done = True
            return ColdMark(None) if self._cold else None
        if numbered_elsewhere and not self._cold:
            self._cold = True
            return ColdMark(first)
        return None
