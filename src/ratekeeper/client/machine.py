"""The client's passive state machine: what to report to whom, and when it next needs to run.

A :class:`LimiterMachine` holds every key's state and the report bookkeeping of one Limiter.
It never touches a socket, a thread or a clock: its driver (the reporter thread of
``ratekeeper.Limiter``, the reporter task of ``ratekeeper.aio.Limiter``, or a virtual-time model)
runs the cycle:

1. ``deadline = machine.due(now)``: sleep until then (``None``: closed and settled, stop);
2. ``outbound = machine.collect(now)``: at most one :class:`Outbound` per owning server;
3. send each, then ``machine.answered(address, answer, now)`` or
   ``machine.failed(address, error, now)`` for each.

Decisions read the same states (``machine.states``) without a lock: see
:mod:`ratekeeper.client.keystate` for who writes what. Key creation and pruning take
``machine.lock`` (never held across I/O), and the reporter iterates a copy of the key table taken
under it, so keys added while it reports are never a race: they are reported next cycle. A pruned
state is kept one more cycle and its late counts reported, so a hit is lost only if a thread
stalls for a whole report interval between its lookup and its count.

Every server is sent a report every cycle (``probe_ns``; empty if it has nothing to count): report
traffic stays flat whatever the request traffic, and a wrong or dead address shows in
:attr:`LimiterMachine.health` and the log even without traffic.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import NamedTuple

from ratekeeper.client.clerk import Clerk
from ratekeeper.client.decide import Decision, decide
from ratekeeper.client.health import Health
from ratekeeper.client.keystate import KeyState
from ratekeeper.client.policy import Key, LimitsArg, Policies
from ratekeeper.client.reports import PendingReport, ReportBook, report_timeout
from ratekeeper.client.routing import RoutingTable, route
from ratekeeper.client.servers import assignment_of, default_client_id
from ratekeeper.client.wire import MAX_HOT_KEYS, hot_keys_from_wire
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment
from ratekeeper.errors import ClientClosedError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["LimiterMachine", "LimiterOptions", "LimiterStats", "Outbound"]

#: Most report cycles a closing machine runs while a server fails to answer (one sends
#: everything unless a resend waits or reports were full; full ones are drained while answered).
_CLOSING_ROUNDS = 3


class Outbound(NamedTuple):
    """One report to send: ``request`` to the server at ``address``, within ``timeout`` s (a
    tuple: one is built per server per cycle)."""

    address: str
    request: pb.ReportRequest
    #: Seconds the report may take: the limiter's timeout plus a share per key it carries
    #: (:func:`~ratekeeper.client.reports.report_timeout`).
    timeout: float


@dataclass(slots=True)
class LimiterStats:
    """Counts a limiter keeps about itself (plain values, safe to read from any thread)."""

    #: Report cycles run (each sends at most one report per server).
    cycles: int = 0
    #: Reports answered, and reports that failed or timed out (their instructions kept).
    answered: int = 0
    failed: int = 0
    #: Keys tracked, as of the last look.
    tracked: int = 0
    #: Keys with a server's instruction (a rejection period or a rate) in force, per cycle.
    instructions: int = 0
    #: Hits admitted on keys whose server's latest report had failed: decided locally only.
    admitted_failing_open: int = 0
    #: Keys seen while ``max_keys`` were tracked: admitted, neither limited nor reported.
    untracked: int = 0
    #: Keys dropped because they were idle with no instruction in force.
    pruned: int = 0
    #: Servers owning a slice of the assignment routed by, and its generation
    #: ``(incarnation, number)``, as of the last look.
    owners: int = 0
    generation: tuple[int, int] = (0, 0)
    #: Hits of unanswered reports re-sent to a new owner after their server left the assignment.
    rerouted: int = 0


@dataclass(frozen=True, slots=True)
class LimiterOptions:
    """Everything a limiter is told besides its servers; documented on ``ratekeeper.Limiter``."""

    domain: str = "default"
    limit: LimitsArg | Mapping[str, LimitsArg] | None = None
    policies: PolicyTree | str | os.PathLike[str] | None = None
    report_interval: float = 0.1
    client_id: str | None = None
    max_keys: int = 100_000
    max_keys_per_report: int = 10_000
    timeout: float | None = None
    #: Intern keys per server: the descriptor once, then an id and counts (issue 15).
    compact_reports: bool = True


class LimiterMachine:
    """Keys, reports and instructions of one client; see the module docstring.

    Arguments are those of ``ratekeeper.Limiter`` (documented there and in docs/client.md).
    """

    def __init__(
        self, servers: str | Sequence[str] | Assignment, options: LimiterOptions | None = None
    ) -> None:
        o = options or LimiterOptions()
        if o.report_interval <= 0:
            raise ValueError("report_interval must be positive")
        self.client_id = o.client_id or default_client_id()
        #: The assignment routed by, and how it is learned (one address: by Watch).
        self.clerk = Clerk(
            assignment_of(servers), discover=isinstance(servers, str), caller=self.client_id
        )
        self.interval_ns = round(o.report_interval * NS_PER_SECOND)
        #: Seconds each report may take (default: half the interval, so a cycle never overruns),
        #: plus ``reports.TIMEOUT_PER_KEY_S`` per key it carries.
        self.timeout = o.report_interval / 2 if o.timeout is None else o.timeout
        #: Longest a server goes without a report (an empty one if nothing is counted): one
        #: interval, so every cycle reports to every server and report traffic does not grow
        #: with request traffic (a sparse client hears about hot keys every cycle, too).
        self.probe_ns = self.interval_ns
        self.stats = LimiterStats()
        self.health = Health(warn_every_ns=30 * NS_PER_SECOND)
        #: Every tracked key's state; read by decisions without a lock, never replaced.
        self.states: dict[Key, KeyState] = {}
        self.lock = threading.Lock()
        self._policies = Policies(o.domain, o.limit, o.policies)
        self._max_keys = o.max_keys
        self._max_per_report = o.max_keys_per_report
        # the backlog horizon is set each cycle from the clerk's (one server or a cluster)
        self._book = ReportBook(self.client_id, 1, o.compact_reports)
        self._retired: list[KeyState] = []
        self._in_flight: dict[str, PendingReport] = {}
        self._sent_at: dict[str, int] = {}
        self._next_due: int | None = None
        #: The clerk's backlog horizon the book was last told, and the table last reported by
        #: with its servers (each read once per change, not per cycle).
        self._backlog_s: float | None = None
        self._servers_of: tuple[RoutingTable | None, frozenset[str]] = (None, frozenset())
        self._last_collect: int | None = None
        self._closed = False
        self._closing_rounds = 0
        self._closing_held = False
        #: Until when each key a server broadcast as hot is rejected (monotonic ns; replaced,
        #: never mutated, so ``track`` reads it without a lock). Bounded: entries expire.
        self._hot: dict[int, int] = {}

    # --- keys ----------------------------------------------------------------------------------

    def track(self, key: Key) -> KeyState:
        """The state of ``key``, created on its first hit (bounded by ``max_keys``)."""
        if self._closed:
            raise ClientClosedError("this Limiter is closed")
        st = self.states.get(key)
        if st is not None:
            return st
        fresh = KeyState(self._policies.domain, self._policies.resolve(key))
        until = self._hot.get(fresh.key_hash)
        if until is not None:
            fresh.reject_until(until)  # hot elsewhere in the fleet: its bucket is empty
        with self.lock:
            st = self.states.get(key)
            if st is not None:
                return st
            if len(self.states) >= self._max_keys:
                self.stats.untracked += 1  # decided on a throwaway state: bounded memory wins
                return fresh
            self.states[key] = fresh
            return fresh

    def decide(self, key: Key, hits: int, now: int) -> Decision:
        """Decide ``hits`` for ``key`` at ``now`` (what ``Limiter.acquire`` does, clock given)."""
        return decide(self.states.get(key) or self.track(key), now, hits)

    @property
    def assignment(self) -> Assignment:
        """The assignment reports are routed by now."""
        return self.clerk.table.assignment

    @property
    def ready(self) -> bool:
        """The assignment is known and every server of it has answered, none failing
        repeatedly."""
        return self.clerk.known and self.health.ready(self.clerk.table.servers)

    # --- the cycle -----------------------------------------------------------------------------

    def due(self, now: int) -> int | None:
        """When :meth:`collect` should next run (monotonic ns); ``None``: never again (closed)."""
        if self._closed:
            if not self._closing_rounds:
                return now
            if self._book.unanswered or self._closing_held:
                return now if self._closing_rounds < _CLOSING_ROUNDS else None
            # every report answered, but full reports carried counts over: keep draining
            return now if self._retired else None
        if self._next_due is None:
            self._next_due = now + self.interval_ns
        return self._next_due

    def collect(self, now: int) -> list[Outbound]:
        """This cycle's reports: at most one per server.

        A server whose last report went unanswered gets that same report again; every other
        server gets the counts drained since its last report. Also reverts expired grants,
        prunes idle keys and probes servers that have gone a while without a report.
        """
        for address in list(self._in_flight):
            self.failed(address, "no answer before the next report cycle", now)
        interval = self.interval_ns if self._last_collect is None else now - self._last_collect
        interval = max(interval, 1)
        self._last_collect = now
        self._next_due = max((self._next_due or now) + self.interval_ns, now)
        self.stats.cycles += 1
        table = self.clerk.table  # one assignment for the whole cycle, whoever adopts meanwhile
        if table is not self._servers_of[0]:
            self._servers_of = (table, table.servers)  # a table is immutable: read it once
        self._follow(self._servers_of[1])
        book = self._book
        if self._closed:
            self._closing_rounds += 1
            self._closing_held = bool(book.unanswered)
        fresh: dict[str, PendingReport] = {}
        forgiven = book.take_forgiven()
        if self._retired:
            retired, self._retired = self._retired, []
            for st in retired:
                self._drain(fresh, table, st, forgiven, interval)
            # counts held back (an unanswered server, a full report) keep their state until sent
            self._retired.extend(st for st in retired if st.unsent_admitted or st.unsent_rejected)
        self._sweep(fresh, table, forgiven, interval, now)
        if not self._closed:
            self._probe(fresh, table, interval, now)
        resent = book.unanswered
        if resent:
            book.unanswered = {}
            fresh = {**resent, **fresh}
        self._in_flight = fresh
        sent_at, timeout = self._sent_at, self.timeout
        outbound = []
        for address, r in fresh.items():
            sent_at[address] = now
            outbound.append(Outbound(address, r.request, report_timeout(timeout, len(r))))
        return outbound

    def answered(self, address: str, answer: pb.ReportResponse, now: int) -> None:
        """Apply a server's answer, its durations counted from ``now`` (receipt)."""
        report = self._in_flight.pop(address, None)
        if report is None:
            return  # not awaited: already settled as failed
        self.stats.answered += 1
        self.health.answered(address, now)
        self._book.answered(address)
        if answer.HasField("assignment"):  # the server holds a newer one: route by it
            self.clerk.seen_wire(answer.assignment)
        report.apply(answer, now)
        if answer.hot or self._hot:
            self._apply_hot(hot_keys_from_wire(answer), now)

    def _apply_hot(self, hot: list[tuple[int, int]], now: int) -> None:
        """Reject the keys a server says are over their limit fleet-wide, if tracked here, and
        remember them for keys first seen before they expire."""
        if not hot and not self._hot:
            return
        table = {h: until for h, until in self._hot.items() if until > now}
        for hashed, left in hot:
            table[hashed] = max(table.get(hashed, 0), now + left)
        if len(table) > MAX_HOT_KEYS:
            table = dict(sorted(table.items(), key=lambda item: item[1])[-MAX_HOT_KEYS:])
        self._hot = table
        if not hot:
            return
        fresh = dict(hot)
        with self.lock:
            states = list(self.states.values())
        for st in states:
            if st.key_hash in fresh:
                until = table[st.key_hash]
                st.reject_until(until)
                st.instructed_until = max(st.instructed_until, until)

    def failed(self, address: str, error: str, now: int) -> None:
        """A report got no answer: keep deciding with the instructions in force (fail open as
        they expire) and send the same report again next cycle, so none of its hits is lost.
        ``error`` says why, in one line (it is logged after a few failures in a row).
        """
        report = self._in_flight.pop(address, None)
        if report is None:
            return
        self.stats.failed += 1
        self.health.failed(address, error, now)
        self._book.failed(report)

    def close(self) -> None:
        """Refuse further decisions and watches; the next cycles still report every key's counts.

        Every key becomes unknown, and an unknown key raises, so the decision path pays nothing.
        :meth:`due` then says when the last cycles run, and ``None`` once they have.
        """
        self._closed = True
        self.clerk.close()
        with self.lock:
            states = list(self.states.values())
            self.states.clear()
        self._retired.extend(states)

    # --- the cycle's steps ---------------------------------------------------------------------

    def _follow(self, servers: frozenset[str]) -> None:
        """The unanswered reports of servers that left the assignment (now ``servers``) go, their
        counts back to their keys, so this cycle routes them to the new owners (none is lost).
        Checked every cycle: a report sent by the previous assignment may fail after the
        adoption."""
        backlog = self.clerk.backlog_s
        if backlog != self._backlog_s:  # the clerk's mode changed (or the first cycle)
            self._backlog_s = backlog
            self._book.hold_for(math.ceil(backlog * NS_PER_SECOND / self.interval_ns))
        withdrawn = self._book.withdraw(servers)
        live: set[int] = set()
        if withdrawn:
            with self.lock:
                live = {id(st) for st in self.states.values()}
        for report in withdrawn:
            for st, admitted, rejected in report.counts():
                st.unsent_admitted += admitted
                st.unsent_rejected += rejected
                self.stats.rerouted += admitted + rejected
                if id(st) not in live:
                    self._retired.append(st)  # pruned meanwhile: drained with the retired
        if self.health.servers.keys() <= servers:
            return
        for gone in [a for a in self.health.servers if a not in servers]:
            self.health.servers.pop(gone, None)
            self._sent_at.pop(gone, None)

    def _sweep(
        self,
        fresh: dict[str, PendingReport],
        table: RoutingTable,
        forgiven: AbstractSet[str],
        interval: int,
        now: int,
    ) -> None:
        """Drain every tracked key, revert expired grants, count instructions, prune the idle."""
        with self.lock:
            snapshot = self.states.copy()  # one C call: keys added meanwhile wait a cycle
        idle: list[Key] = []
        in_force = 0
        for key, st in snapshot.items():
            if st.granted_until and st.granted_until <= now:
                st.end_grant()
            if st.instructed_until > now:
                in_force += 1
            if not self._drain(fresh, table, st, forgiven, interval) and st.rested(now):
                idle.append(key)
        self.stats.instructions = in_force
        if idle:
            with self.lock:
                for key in idle:
                    gone = self.states.pop(key, None)
                    if gone is not None:
                        self._retired.append(gone)
            self.stats.pruned += len(idle)
        self.stats.tracked = len(self.states)

    def _drain(
        self,
        fresh: dict[str, PendingReport],
        table: RoutingTable,
        st: KeyState,
        forgiven: AbstractSet[str],
        interval: int,
    ) -> bool:
        """Move ``st``'s counts since its last report into its server's report; False if none."""
        admitted, rejected = st.drain()
        if not (admitted or rejected or st.unsent_admitted or st.unsent_rejected):
            return False
        address = route(table, st)
        if admitted and self.health.failing(address):
            self.stats.admitted_failing_open += admitted
        st.unsent_admitted += admitted
        st.unsent_rejected += rejected
        if address in self._book.unanswered:
            return True  # waits until that server has the report it missed
        if address in forgiven:
            st.unsent_admitted = st.unsent_rejected = 0
            return True
        report = fresh.get(address)
        if report is None:
            report = fresh[address] = self._book.new(address, interval, table.generation)
        if len(report) >= self._max_per_report:
            return True  # carried over: its counts stay unsent until the next cycle
        report.add(st, st.unsent_admitted, st.unsent_rejected)
        st.unsent_admitted = st.unsent_rejected = 0
        return True

    def _probe(
        self, fresh: dict[str, PendingReport], table: RoutingTable, interval: int, now: int
    ) -> None:
        """An empty report to each server not sent one for ``probe_ns`` (or ever), counted in
        cycles: cycles run late by varying amounts, and a time test skipped some (issue 11)."""
        due = self.probe_ns - self.interval_ns
        for address in self._servers_of[1]:  # table.servers, read once per table (collect)
            if address in fresh or address in self._book.unanswered:
                continue
            sent = self._sent_at.get(address)
            if sent is None or now - sent >= due:
                fresh[address] = self._book.new(address, interval, table.generation)
