"""The client's sans-IO state: local decisions, report building, instruction applying.

Both ``ratekeeper.Limiter`` (a reporter thread) and ``ratekeeper.aio.Limiter`` (a reporter task)
are this class plus a driver that calls :meth:`LimiterState.collect` every interval, sends each
batch, and hands the answer to :meth:`LimiterState.apply`. Nothing here touches a socket.

**The decision** (:meth:`~LimiterState.allow`) reads only local state: one dict lookup, one clock
read, one comparison against the key's ``earliest`` admissible instant, one store, one count.
Every instruction is folded into that one number and two pace fields when it is applied
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
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic_ns

from ratekeeper.client.policy import Key, KeyPolicy, LimitsArg, Policies, local_limit
from ratekeeper.config import PolicyTree
from ratekeeper.core import pacing
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.slices import Assignment, Generation, single_owner
from ratekeeper.errors import ClientClosedError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import limit_to_spec, spec_to_limit

__all__ = ["Batch", "Decision", "KeyState", "LimiterState", "LimiterStats", "assignment_of"]

#: The pace of a key with no known limit: ``earliest`` never moves, every hit is admitted.
_FREE = pacing.Pace(0, pacing.NEVER, 0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to :meth:`LimiterState.acquire`."""

    #: Whether the hits were admitted (and counted as admitted).
    allowed: bool
    #: Hits admissible right after this decision, by local state (``None``: no known limit).
    remaining: int | None
    #: Seconds until the hits would be admitted (0 when allowed; ``inf``: never).
    retry_after: float
    #: Seconds until the local limiter is back to full capacity.
    reset_after: float
    #: The limit enforced locally (``None``: none known).
    limit: Limit | None


class KeyState:
    """One key's local state; see the module docstring for who writes what."""

    __slots__ = (
        "admitted",
        "burst",
        "earliest",
        "emission",
        "granted_until",
        "key_hash",
        "limit",
        "pace",
        "policy",
        "rejected",
        "sent_admitted",
        "sent_rejected",
        "template",
        "tolerance",
    )

    def __init__(self, domain: str, resolved: KeyPolicy) -> None:
        #: First instant (monotonic ns) the next hit may be admitted.
        self.earliest = 0
        #: The current pace, and its numbers copied flat for the decision path.
        self.pace = _FREE
        self.emission = 0
        self.tolerance = pacing.NEVER
        self.burst = 0
        #: Hits admitted / rejected so far (never reset; see the module docstring).
        self.admitted = itertools.count()
        self.rejected = itertools.count()
        #: The counts as of the last report (reporter only).
        self.sent_admitted = 0
        self.sent_rejected = 0
        #: When the granted pace reverts to the policy pace (0: no granted pace).
        self.granted_until = 0
        self.key_hash = resolved.key_hash
        #: The local limiter's limit and pace (``None`` pace with a limit: it admits nothing).
        self.limit: Limit | None = None
        self.policy: pacing.Pace | None = _FREE
        #: The report entry for this key, counts excepted; inline limits ride along.
        self.template = pb.KeyReport(
            domain=domain,
            entries=[pb.Entry(key=k, value=v) for k, v in resolved.entries],
            limits=[limit_to_spec(lim) for lim in resolved.limits] if resolved.inline else [],
        )
        self.set_limits(resolved.limits, 0)

    def set_limits(self, limits: Sequence[Limit], now: int) -> None:
        """Enforce ``limits`` locally from now on (the policy pace)."""
        limit = local_limit(limits)
        if limit == self.limit and limits:
            return
        policy = _FREE if limit is None else pacing.policy_pace(limit)
        if self.policy is None and policy is not None:
            self.earliest = now  # a limit of 0 was lifted: start from empty, forgive nothing
        self.limit, self.policy = limit, policy
        self.use(policy)

    def use(self, pace: pacing.Pace | None) -> None:
        """Decide with ``pace`` from now on (``None``: admit nothing)."""
        if pace is None:
            self.earliest = pacing.NEVER
            pace = _FREE
        self.pace = pace
        self.emission, self.tolerance, self.burst = (
            pace.emission_ns,
            pace.tolerance_ns,
            pace.burst_ns,
        )


@dataclass(slots=True)
class Batch:
    """One report to one server, and the states its answer applies to (in request order)."""

    server: str
    request: pb.ReportRequest
    states: list[KeyState] = field(default_factory=list)


@dataclass(slots=True)
class LimiterStats:
    """Counts a limiter keeps about itself."""

    #: Reports answered, and reports that failed or timed out (their instructions kept).
    reports: int = 0
    failures: int = 0
    #: Keys seen while ``max_keys`` were tracked: admitted, neither limited nor reported.
    untracked: int = 0
    #: Keys dropped because they were idle with no instruction in force.
    pruned: int = 0


def _value(counter: itertools.count[int]) -> int:
    """The next value ``counter`` would yield, without advancing it (``repr`` is ``count(N)``)."""
    return int(repr(counter)[6:-1])


def _bump(counter: itertools.count[int], hits: int) -> None:
    """Advance ``counter`` by ``hits``, each step atomic (the loop runs in C)."""
    deque(itertools.islice(counter, hits), maxlen=0)


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
    """Decisions and report bookkeeping for one client; see the module docstring."""

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
        """Decide ``hits`` at once (``0`` only checks) and say why: remaining, retry-after."""
        if hits < 0:
            raise ValueError("hits must be >= 0")
        try:
            st = self._states[key]
        except KeyError:
            st = self._track(key)
        now = monotonic_ns()
        pace = st.pace
        after = pacing.admit(st.earliest, now, pace, hits) if hits else None
        if after is not None:
            st.earliest = after
            _bump(st.admitted, hits)
        elif hits:
            _bump(st.rejected, hits)
        return _decision(st, now, hits, allowed=after is not None or not hits)

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
        """Drain every key's counts into at most one report per owning server.

        ``now`` is the monotonic clock (ns). Also reverts expired granted paces and prunes idle
        keys (see the module docstring).
        """
        last = self._last_collect
        interval = int(self.report_interval * NS_PER_SECOND) if last is None else now - last
        interval = max(interval, 1)
        self._last_collect = now
        batches: dict[str, Batch] = {}
        retired, self._retired = self._retired, []
        for st in retired:
            self._add(batches, st, now, interval)
        idle: list[Key] = []
        for key, st in list(self._states.items()):
            if st.granted_until and st.granted_until <= now:
                st.granted_until = 0
                st.use(st.policy)
            if not self._add(batches, st, now, interval) and _rested(st, now):
                idle.append(key)
        if idle:
            self._prune(idle)
        return list(batches.values())

    def _add(self, batches: dict[str, Batch], st: KeyState, now: int, interval: int) -> bool:
        """Put ``st``'s counts since its last report into its server's batch; False if none."""
        admitted, rejected = _value(st.admitted), _value(st.rejected)
        if admitted == st.sent_admitted and rejected == st.sent_rejected:
            return False
        server = self.assignment.owner_of(st.key_hash)
        batch = batches.get(server)
        if batch is None:
            request = pb.ReportRequest(client_id=self.client_id, interval_ns=interval)
            generation = self.assignment.generation
            request.generation.incarnation = generation.incarnation
            request.generation.number = generation.number
            batch = batches[server] = Batch(server, request)
        if len(batch.states) >= self._max_per_report:
            return True  # carried over: its counts stay unsent until the next cycle
        entry = batch.request.keys.add()
        entry.CopyFrom(st.template)
        entry.admitted = admitted - st.sent_admitted
        entry.rejected = rejected - st.sent_rejected
        st.sent_admitted, st.sent_rejected = admitted, rejected
        batch.states.append(st)
        return True

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
        generation = Generation(response.generation.incarnation, response.generation.number)
        self.server_generation = max(self.server_generation, generation)
        for st, instruction in zip(batch.states, response.instructions, strict=False):
            _apply(st, instruction, received_at)

    def failed(self, batch: Batch) -> None:
        """A report failed or timed out: keep deciding with the instructions in force (fail
        open as they expire). Its counts are not re-sent: the server may have applied them, and
        an outage's backlog arriving at once would put a recovered key deep into debt."""
        self.stats.failures += 1

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


def _rested(st: KeyState, now: int) -> bool:
    """Whether a fresh state would decide exactly as ``st`` does (so ``st`` may be dropped)."""
    return not st.granted_until and st.earliest <= max(0, now - st.burst)


def _apply(st: KeyState, instruction: pb.KeyInstruction, received_at: int) -> None:
    if instruction.limits:
        # a server we cannot understand does not get to change our local limiter
        with contextlib.suppress(ValueError):
            st.set_limits([spec_to_limit(spec) for spec in instruction.limits], received_at)
    if instruction.HasField("admit_rate") and instruction.admit_rate <= 0.0:
        st.earliest = pacing.reject_until(st.earliest, received_at + instruction.valid_for_ns)
    elif instruction.HasField("admit_rate") and st.policy is not None:
        st.use(pacing.granted_pace(instruction.admit_rate, st.policy))
        st.granted_until = received_at + instruction.valid_for_ns
    elif st.granted_until:
        st.granted_until = 0
        st.use(st.policy)
    if instruction.reject_for_ns:
        st.earliest = pacing.reject_until(st.earliest, received_at + instruction.reject_for_ns)


def _decision(st: KeyState, now: int, hits: int, *, allowed: bool) -> Decision:
    if st.limit is None:
        wait = max(0, st.earliest - now)
        return Decision(allowed, None, 0.0 if allowed else wait / NS_PER_SECOND, 0.0, None)
    pace = st.pace
    wait = 0 if allowed else pacing.wait_ns(st.earliest, now, pace, max(hits, 1))
    remaining = pacing.remaining(st.earliest, now, pace) if pace.emission_ns else 0
    reset = max(0, st.earliest + pace.burst_ns - now)
    retry = float("inf") if wait < 0 else wait / NS_PER_SECOND
    return Decision(allowed, remaining, retry, reset / NS_PER_SECOND, st.limit)
