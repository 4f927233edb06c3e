"""The client's sans-IO state: local decisions, report building, instruction applying.

Both ``ratekeeper.Limiter`` (a reporter thread) and ``ratekeeper.aio.Limiter`` (a reporter task)
are this class plus a driver that calls :meth:`LimiterState.collect` every interval, sends each
batch, and hands the answer to :meth:`LimiterState.apply`. Nothing here touches a socket.

**The decision** (:meth:`~LimiterState.allow`) reads only local state: one dict lookup, one clock
read, two comparisons against the key's ``earliest`` admissible instant, one store, one count.
Every instruction is folded into that one number and the pace's fields when it is applied
(:mod:`ratekeeper.core.pacing`): an active *reject-for* pushes ``earliest`` out; an *admit rate*
installs a granted pace that spreads hits evenly; otherwise the policy pace is the local limiter
(defence in depth); a key with no known limit is admitted optimistically.

**Thread safety without a lock on the decision path.** Request threads and the reporter share
:class:`KeyState` objects:

* Counts are ``itertools.count`` objects: ``next()`` on one is a single call into C that the GIL
  never interrupts, so concurrent increments are never lost (``x += 1`` on an attribute is three
  steps and can lose one). Only the reporter reads them, and it never resets them: it remembers
  the values it last reported and sends the difference, so a hit counted while a report is being
  built lands in this report or the next, never in both or neither.
* ``earliest`` is read-modify-written by request threads without a lock. Two threads deciding the
  same key at the same instant may both admit; both hits are still counted and reported, so the
  server's bucket sees them and the overshoot is at most one hit per concurrent thread.
* Key creation and pruning take a lock (never held across a network call). A thread that looked
  a state up just before the reporter pruned it still counts into that object; pruned states are
  kept one more cycle and their late counts reported, so a hit is lost only if a thread stalls
  for a whole report interval between its lookup and its count.

**Reports count every hit once.** Reports are numbered per server and a server applies each
number once, so an unanswered report is resent unchanged as that server's report of the next
cycle (see :meth:`LimiterState.failed`); the counts of its keys wait in place meanwhile.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import ParamSpec, TypeVar

from ratekeeper.client.integrations.decorator import limit as limit_decorator
from ratekeeper.client.keystate import (
    Decision,
    KeyState,
    apply_instruction,
    bump,
    count_value,
    decision,
    rested,
)
from ratekeeper.client.policy import Key, LimitsArg, Policies
from ratekeeper.config import PolicyTree
from ratekeeper.core import pacing
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation, single_owner
from ratekeeper.errors import ClientClosedError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["Batch", "LimiterState", "LimiterStats", "assignment_of"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(slots=True)
class Batch:
    """One report to one server, and the states its answer applies to (in request order)."""

    server: str
    request: pb.ReportRequest
    states: list[KeyState] = field(default_factory=list)


@dataclass(slots=True)
class LimiterStats:
    """Counts a limiter keeps about itself."""

    #: Report cycles run (each sends at most one report per server).
    cycles: int = 0
    #: Reports answered, and reports that failed or timed out (their instructions kept).
    reports: int = 0
    failures: int = 0
    #: Keys seen while ``max_keys`` were tracked: admitted, neither limited nor reported.
    untracked: int = 0
    #: Keys dropped because they were idle with no instruction in force.
    pruned: int = 0


def assignment_of(servers: str | Sequence[str] | Assignment) -> Assignment:
    """One address owns everything; several split the hash space evenly, in the given order."""
    if isinstance(servers, Assignment):
        return servers
    if isinstance(servers, str):
        return single_owner(servers)
    if not servers:
        raise ValueError("at least one server address is required")
    n = len(servers)
    return Assignment(Generation(), tuple((i << 64) // n for i in range(n)), tuple(servers))


def default_client_id() -> str:
    """Host, process and a random suffix: unique per Limiter, readable in server logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class LimiterState:
    """Decisions and report bookkeeping for one client; see the module docstring.

    Arguments (the same for both twins):

    * ``servers``: one address (``"host:port"``), several (the hash space split evenly among
      them, in order), or an :class:`~ratekeeper.core.slices.Assignment`;
    * ``domain``: the rate limit domain every key belongs to (default ``"default"``);
    * ``limit``: inline limits for every key (``"100/s burst 200"``, ``"10/s; 1000/day"``, or
      :class:`~ratekeeper.Limit` values), or a mapping of glob patterns over plain-string keys
      to limits (first match wins). Sent with each report, so a server counts them even without
      a configured rule (a configured rule wins);
    * ``policies``: a policy tree or the path of a config file, matched like the server does;
    * ``report_interval``: seconds between reports (default 0.1);
    * ``client_id``: this client's identity on the servers (default: host, pid, random suffix);
    * ``max_keys``: most keys tracked at once; ``max_keys_per_report``: most keys per report;
    * ``timeout``: seconds each report may take (default: half the interval).

    Keys are plain strings, named on the wire by the single entry ``("key", name)``, or tuples of
    ``(key, value)`` descriptor entries.
    """

    def __init__(
        self,
        servers: str | Sequence[str] | Assignment,
        *,
        domain: str = "default",
        limit: LimitsArg | Mapping[str, LimitsArg] | None = None,
        policies: PolicyTree | str | os.PathLike[str] | None = None,
        report_interval: float = 0.1,
        client_id: str | None = None,
        max_keys: int = 100_000,
        max_keys_per_report: int = 10_000,
        timeout: float | None = None,
    ) -> None:
        if report_interval <= 0:
            raise ValueError("report_interval must be positive")
        #: Deadline of each Report call (default: half the interval, so a cycle never overruns).
        self.timeout = report_interval / 2 if timeout is None else timeout
        self.assignment = assignment_of(servers)
        self.client_id = client_id or default_client_id()
        self.report_interval = report_interval
        #: The highest assignment generation any server has answered with.
        self.server_generation = Generation()
        self.stats = LimiterStats()
        self._policies = Policies(domain, limit, policies)
        self._states: dict[Key, KeyState] = {}
        self._retired: list[KeyState] = []
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._max_per_report = max_keys_per_report
        self._last_collect: int | None = None
        self._closed = False
        #: Per server: the last report number, the report awaiting a resend, and how many
        #: cycles in a row it failed; servers whose unsent counts the next cycle drops.
        self._sequences: dict[str, int] = {}
        self._unanswered: dict[str, Batch] = {}
        self._failures: dict[str, int] = {}
        self._forgive: set[str] = set()
        self._retry_cycles = max(1, math.ceil(1.0 / report_interval))
        self._start()

    def _start(self) -> None:
        """Start the driver (a reporter thread or task); the last step of construction."""

    # --- the decision path -------------------------------------------------------------------

    def allow(self, key: Key) -> bool:
        """Admit one hit for ``key``? Local state only: no I/O, no lock once the key is known."""
        try:
            st = self._states[key]
        except KeyError:
            st = self._track(key)
        now = monotonic_ns()
        earliest = st.earliest
        if earliest > now:
            next(st.rejected)
            return False
        # pacing.admit for one hit, inlined: a call here would cost a third of the budget
        if earliest < now - st.tolerance:
            earliest = now - st.burst  # the schedule fell behind: restart it, burst included
        st.earliest = earliest + st.emission
        next(st.admitted)
        return True

    def acquire(self, key: Key, hits: int = 1) -> Decision:
        """Decide ``hits`` at once and say why: remaining, retry-after.

        ``hits=0`` counts nothing and tells whether one hit would be admitted now.
        """
        if hits < 0:
            raise ValueError("hits must be >= 0")
        try:
            st = self._states[key]
        except KeyError:
            st = self._track(key)
        now = monotonic_ns()
        after = pacing.admit(st.earliest, now, st.pace, max(hits, 1))
        if not hits:
            return decision(st, now, 1, allowed=after is not None)
        if after is None:
            bump(st.rejected, hits)
            return decision(st, now, hits, allowed=False)
        st.earliest = after
        bump(st.admitted, hits)
        return decision(st, now, hits, allowed=True)

    def limit(
        self, key: Key | Callable[..., Key], hits: int = 1
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A decorator refusing calls past the limit with :class:`~ratekeeper.RateLimited`.

        ``key`` is a key, or a function of the call's arguments returning one:
        ``@limiter.limit(key=lambda user, **_: user)``.
        """
        return limit_decorator(self, key, hits)

    def _track(self, key: Key) -> KeyState:
        """The slow path of a key's first hit: resolve, hash, and remember it (bounded)."""
        if self._closed:
            raise ClientClosedError("this Limiter is closed")
        resolved = self._policies.resolve(key)
        with self._lock:
            st = self._states.get(key)
            if st is not None:
                return st
            st = KeyState(self._policies.domain, resolved)
            if len(self._states) >= self._max_keys:
                self.stats.untracked += 1  # decided on a throwaway state: bounded memory wins
                return st
            self._states[key] = st
            return st

    # --- the reporter's side -----------------------------------------------------------------

    def collect(self, now: int) -> list[Batch]:
        """This cycle's reports: at most one per owning server.

        ``now`` is the monotonic clock (ns). A server whose last report went unanswered gets
        that same report again (it applies each report once); its keys' new counts wait in
        place. Every other server gets the counts drained since its last report. Also reverts
        expired granted paces and prunes idle keys (see the module docstring).
        """
        last = self._last_collect
        interval = int(self.report_interval * NS_PER_SECOND) if last is None else now - last
        self._last_collect = now
        self.stats.cycles += 1
        fresh: dict[str, Batch] = {}
        forgive, self._forgive = self._forgive, set()
        retired, self._retired = self._retired, []
        for st in retired:
            self._drain(fresh, st, forgive, max(interval, 1))
        # counts held back (an unanswered server, a full report) keep their state until sent
        self._retired.extend(
            st
            for st in retired
            if count_value(st.admitted) != st.sent_admitted
            or count_value(st.rejected) != st.sent_rejected
        )
        idle: list[Key] = []
        for key, st in list(self._states.items()):
            if st.granted_until and st.granted_until <= now:
                st.granted_until = 0
                st.use(st.policy)
            if not self._drain(fresh, st, forgive, max(interval, 1)) and rested(st, now):
                idle.append(key)
        if idle:
            self._prune(idle)
        return [*self._unanswered.values(), *fresh.values()]

    def _drain(
        self, batches: dict[str, Batch], st: KeyState, forgive: set[str], interval: int
    ) -> bool:
        """Move ``st``'s counts since its last report into its server's batch; False if none."""
        admitted, rejected = count_value(st.admitted), count_value(st.rejected)
        if admitted == st.sent_admitted and rejected == st.sent_rejected:
            return False
        server = self.assignment.owner_of(st.key_hash)
        if server in self._unanswered:
            return True  # waits until that server has the report it missed
        if server not in forgive:
            batch = batches.get(server) or self._new_batch(batches, server, interval)
            if len(batch.states) >= self._max_per_report:
                return True  # carried over: its counts stay unsent until the next cycle
            entry = batch.request.keys.add()
            entry.CopyFrom(st.template)
            entry.admitted = admitted - st.sent_admitted
            entry.rejected = rejected - st.sent_rejected
            batch.states.append(st)
        st.sent_admitted, st.sent_rejected = admitted, rejected
        return True

    def _new_batch(self, batches: dict[str, Batch], server: str, interval: int) -> Batch:
        sequence = self._sequences[server] = self._sequences.get(server, 0) + 1
        generation = self.assignment.generation
        request = pb.ReportRequest(
            client_id=self.client_id,
            interval_ns=interval,
            sequence=sequence,
            generation=pb.Generation(incarnation=generation.incarnation, number=generation.number),
        )
        batch = batches[server] = Batch(server, request)
        return batch

    def _prune(self, idle: list[Key]) -> None:
        with self._lock:
            for key in idle:
                st = self._states.pop(key, None)
                if st is not None:
                    self._retired.append(st)
        self.stats.pruned += len(idle)

    def apply(self, batch: Batch, response: pb.ReportResponse, received_at: int) -> None:
        """Apply a server's answer, its durations counted from ``received_at`` (monotonic ns)."""
        self.stats.reports += 1
        self._unanswered.pop(batch.server, None)
        self._failures.pop(batch.server, None)
        generation = Generation(response.generation.incarnation, response.generation.number)
        self.server_generation = max(self.server_generation, generation)
        for st, instruction in zip(batch.states, response.instructions, strict=False):
            apply_instruction(st, instruction, received_at)

    def failed(self, batch: Batch) -> None:
        """A report got no answer: keep deciding with the instructions in force (fail open as
        they expire) and send the same report again next cycle, so none of its hits is lost.

        After about a second of failures the server's backlog is forgiven instead: the hits it
        would carry were admitted while the server could not be asked, and debiting an outage's
        worth at once would keep a recovered key rejected long after the outage ended.
        """
        self.stats.failures += 1
        failures = self._failures[batch.server] = self._failures.get(batch.server, 0) + 1
        if failures < self._retry_cycles:
            self._unanswered[batch.server] = batch
        else:
            self._unanswered.pop(batch.server, None)
            self._failures.pop(batch.server, None)
            self._forgive.add(batch.server)

    def closing_rounds(self, most: int = 3) -> Iterator[None]:
        """Yields once per report cycle a closing limiter should still run (``most`` at most).

        One cycle sends everything, unless some server's report was unanswered: then that cycle
        resends it, and the counts held back for it need one more.
        """
        for _ in range(most):
            settled = not self._unanswered
            yield
            if settled and not self._unanswered:
                return

    def mark_closed(self) -> None:
        """Refuse further decisions; the next :meth:`collect` still reports every key's counts.

        Every key becomes unknown, and an unknown key raises, so the decision path pays nothing.
        """
        self._closed = True
        with self._lock:
            states, self._states = self._states, {}
            self._retired.extend(states.values())

    @property
    def tracked(self) -> int:
        """Keys currently tracked."""
        return len(self._states)
