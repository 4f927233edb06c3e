"""The clerk: how a client learns, keeps and follows the cluster's assignment. Passive.

A :class:`Clerk` holds the :class:`~ratekeeper.client.routing.RoutingTable` the reporter routes
by, and says which ``Watch`` to make next; its driver (a thread of ``ratekeeper.Limiter``, a task
of ``ratekeeper.aio.Limiter``) makes it and reports back:

1. ``call = clerk.next_watch(now)``: ``None`` means stop watching; else wait until ``call.at``;
2. make ``Watch(call.request)`` on ``call.address`` with ``call.timeout`` (a long poll);
3. ``clerk.watched(address, response, now)``, or ``clerk.watch_failed(address, error, now,
   unimplemented=...)`` when the call failed.

How the assignment is decided (``known``):

* given several addresses or an :class:`~ratekeeper.core.slices.Assignment`, that is the
  assignment (static sharding, no Watch), until a server's answer carries a newer one;
* given one address (``discover``), the client routes everything to it while it asks that
  address for the assignment. A Watch answer decides it (a cluster: every member serves Watch),
  and so does an assignment attached to a report's answer. A Watch answered ``UNIMPLEMENTED``
  means a plain single server: it owns everything and the clerk stops watching. Until one of
  these, the provisional routing to that address already works (a member applies a report for
  keys it does not own and answers with the assignment), so an unreachable address only delays
  readiness.

Once a cluster's assignment is known the clerk keeps one long poll going, carrying the
generation it holds; a failed Watch moves to the next member (the given address first, then
every owner of the assignment held, in turn) after a backoff, so the address a client was given
may go away. Any higher generation seen anywhere is adopted; a lower or equal one never replaces
what is held (:func:`~ratekeeper.core.assignment_diff.apply_update`).

Thread safety: the reporter reads :attr:`Clerk.table` without a lock (tables are immutable and
rebinding it is atomic); every write (a Watch answer from the watch thread, an assignment from a
report answer on the reporter thread) takes :attr:`Clerk.lock`, so the higher generation wins
whichever comes first. Never held across I/O.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ratekeeper.client.routing import RoutingTable
from ratekeeper.core.assignment_diff import Update
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, single_owner
from ratekeeper.proto.assignment import generation_to_wire, update_from_wire
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as apb
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as cpb

__all__ = ["Clerk", "ClerkStats", "WatchCall"]

log = logging.getLogger("ratekeeper.client")

#: How long a Watch is held when nothing changes (the server may answer sooner).
WATCH_WAIT_NS = 10 * NS_PER_SECOND
#: Seconds a Watch may take beyond its wait before the client gives up on it.
WATCH_MARGIN_S = 2.0
#: Backoff after a failed Watch: first, and the most it doubles to.
BACKOFF_NS = 50_000_000
MAX_BACKOFF_NS = 2 * NS_PER_SECOND
#: Least time between two Watches that brought nothing (a server answering at once).
IDLE_GAP_NS = 100_000_000


@dataclass(frozen=True, slots=True)
class WatchCall:
    """One Watch to make: ``request`` to ``address`` no earlier than ``at``."""

    #: The member to ask.
    address: str
    #: The request (the generation held, how long to wait, who asks).
    request: cpb.WatchRequest
    #: Monotonic ns before which it is not made (a backoff).
    at: int
    #: Seconds the call may take in all.
    timeout: float


@dataclass(slots=True)
class ClerkStats:
    """What the clerk has seen (plain values, safe to read from any thread)."""

    #: Watches answered and failed.
    watches: int = 0
    watch_failures: int = 0
    #: Assignments adopted (from a Watch or a report's answer).
    adopted: int = 0
    #: How the assignment was decided: "static", "pending", "cluster" or "single".
    mode: str = "pending"


class Clerk:
    """The client's assignment and its Watch; see the module docstring."""

    def __init__(
        self,
        seed: Assignment,
        *,
        discover: bool,
        caller: str,
        wait_ns: int = WATCH_WAIT_NS,
    ) -> None:
        #: The table the reporter routes by (rebound, never mutated).
        self.table = RoutingTable(seed)
        #: Taken by every write; never across I/O.
        self.lock = threading.Lock()
        self.stats = ClerkStats(mode="pending" if discover else "static")
        self._seed = seed.owners[0]
        self._caller = caller
        self._wait_ns = wait_ns
        #: Whether a Watch or an answer has told the assignment (a static one is told).
        self._learned = not discover
        self._watching = discover
        #: The member Watches go to until one fails (then the next, in turn).
        self._target = self._seed
        self._backoff = 0
        self._next_at = 0
        self._closed = False

    @property
    def known(self) -> bool:
        """Whether the assignment is decided: static, learned, or the single-server fallback."""
        return self._learned

    @property
    def assignment(self) -> Assignment:
        """The assignment routed by now."""
        return self.table.assignment

    # --- the Watch -----------------------------------------------------------------------------

    def next_watch(self, now: int) -> WatchCall | None:
        """The next Watch to make, or ``None``: no more (static, single server, closed)."""
        if not self._watching or self._closed:
            return None
        request = cpb.WatchRequest(wait_ns=self._wait_ns, caller=self._caller)
        if self._learned:
            request.known.CopyFrom(generation_to_wire(self.table.generation))
        timeout = self._wait_ns / NS_PER_SECOND + WATCH_MARGIN_S
        return WatchCall(self._target, request, max(now, self._next_at), timeout)

    def watched(self, address: str, response: cpb.WatchResponse, now: int) -> None:
        """A Watch was answered (with an update, or with nothing new within its wait)."""
        try:
            update = update_from_wire(response.update) if response.HasField("update") else None
        except ValueError as exc:
            self.watch_failed(address, f"malformed assignment: {exc}", now)
            return
        self.stats.watches += 1
        self._backoff = 0
        self._next_at = now if update is not None else now + IDLE_GAP_NS
        if update is not None:
            self.seen(update)

    def watch_failed(self, address: str, error: str, now: int, unimplemented: bool = False) -> None:
        """A Watch failed; ``unimplemented``: the address serves no AssignerService."""
        self.stats.watch_failures += 1
        if unimplemented and not self._learned and address == self._seed:
            with self.lock:
                if not self._learned:  # no answer brought an assignment meanwhile
                    self._learned, self._watching = True, False
                    self.stats.mode = "single"
                    self._hold(self.table.replace(single_owner(self._seed)))
            log.info("ratekeeper server %s serves no cluster: it owns every key", address)
            return
        self._backoff = min(max(2 * self._backoff, BACKOFF_NS), MAX_BACKOFF_NS)
        self._next_at = now + self._backoff
        self._target = self._after(address)
        log.debug("ratekeeper watch on %s failed (%s); next in %d ms", address, error,
                  self._backoff // 1_000_000)  # fmt: skip

    def close(self) -> None:
        """No more Watches."""
        self._closed = True

    # --- assignments seen ----------------------------------------------------------------------

    def seen(self, update: Update) -> bool:
        """Adopt ``update`` if it is newer than what is held (or the first one learned);
        whether the table changed. A diff that does not fit is ignored (a Watch asks again)."""
        with self.lock:
            try:
                table = self.table.adopt(update) if self._learned else None
            except ValueError:
                log.debug("ratekeeper: an assignment diff did not fit the one held; ignored")
                return False
            if table is None:
                if not isinstance(update, Assignment):
                    return False  # a diff needs the assignment it applies to
                table = self.table.replace(update)
                self._learned = True
                self._watching = True  # a cluster, whoever told us: follow it
                self.stats.mode = "cluster"
            elif self.stats.mode == "single" and table is not self.table:
                # a single server that joined a cluster since: followed through report
                # answers (every member attaches a newer assignment), the Watch stays off
                self.stats.mode = "cluster"
            return self._hold(table)

    def seen_wire(self, wire: apb.AssignmentUpdate) -> bool:
        """:meth:`seen` for an update as a report's answer carries it; a malformed one is
        ignored (the Watch brings the real one)."""
        try:
            update = update_from_wire(wire)
        except ValueError as exc:
            log.debug("ratekeeper: a malformed assignment in a report's answer: %s", exc)
            return False
        return update is not None and self.seen(update)

    def _hold(self, table: RoutingTable) -> bool:
        if table is self.table:
            return False
        self.table = table
        self.stats.adopted += 1
        if self.stats.mode == "cluster":
            log.debug("ratekeeper: adopted assignment %s.%s: %d slices on %d servers",
                     table.generation.incarnation, table.generation.number,
                     len(table.assignment.starts), len(table.servers))  # fmt: skip
        return True

    @property
    def watching(self) -> str | None:
        """The member Watches go to (``None``: none will); its channel must stay open."""
        return self._target if self._watching and not self._closed else None

    def _after(self, failed: str) -> str:
        """The member to watch after ``failed``: the given address, then each owner of the
        assignment held, in turn."""
        members = [self._seed, *sorted(self.table.servers - {self._seed})]
        at = members.index(failed) if failed in members else -1
        return members[(at + 1) % len(members)]
