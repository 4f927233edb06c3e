"""A :class:`~ratekeeper.backends.store.Store` that decides every hit locally, for the sidecar.

Why a store: :class:`~ratekeeper.protocol.rls.RlsDecider` holds every RLS semantic (validation,
plans, ``hits_addend``, unlimited, shadow mode, ``replaces``, quota mode, headers) and makes one
store call per request. Putting the batch-reporting client *under* it, as the store, lets the
sidecar reuse the decider unchanged: only where the counters live differs.

Each RLS counter group (one domain and entries, with the limits the plan attached) is one key
of an embedded :class:`~ratekeeper.client.machine.LimiterMachine`. A hit is decided on that
key's local state (its GCRA lanes, one per limit, tightened by the servers' instructions:
reject-until periods and granted rates) and counted as admitted or rejected; the machine's
driver reports the counts and applies the answers. No call leaves the process per request.
The key's limits ride along in its reports, so a server with no rule for the entries (an
Envoy ``RateLimitOverride``) still counts them; a configured rule wins there.

Counters of one request that share their entries (a rule with two limits) share one key: the
server debits each of its limits once per reported hit. Time: the decider passes wall-clock
ns; the machine's instructions run on the monotonic clock its driver reads, so hits are decided
at ``now`` shifted onto that clock by an offset fixed at construction (a later step of the
wall clock shifts local decisions by as much, never the server's counters).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from ratekeeper.backends.store import Hit, Snapshot, StoreStat, TransferUnsupported
from ratekeeper.client.decide import bump, decide, take
from ratekeeper.client.keystate import KeyState
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.policy import Key, KeyPolicy
from ratekeeper.core import pacing
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome

__all__ = ["SidecarStore"]

#: The first entry of every machine key: sidecar keys carry their domain (the machine's own
#: keys are entries of one domain), under a name no descriptor can use (keys are non-empty).
_DOMAIN = ""


class SidecarStore:
    """Local decisions over a :class:`LimiterMachine`; see the module docstring."""

    def __init__(self, machine: LimiterMachine, max_keys: int = 100_000) -> None:
        self.machine = machine
        self._max_keys = max_keys
        #: Wall clock minus monotonic clock, both in ns, taken once.
        self._offset = time.time_ns() - time.monotonic_ns()

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        return self._decide(hits, now, debit=False)

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        return self._decide(hits, now, debit=True)

    def _decide(self, hits: Sequence[Hit], now: int, *, debit: bool) -> list[Outcome]:
        mono = now - self._offset
        if len(hits) == 1:  # most requests: one descriptor, one limit
            h = hits[0]
            c = h.counter
            st = self._state(c.domain, c.entries, c.key_hash, (c.limit,), mono)
            allowed = _debit(st, mono, h.hits) if debit else _take(st, mono, h.hits)
            return [_outcome(st, allowed, c.limit, mono, h.hits)]
        groups: dict[tuple[str, Entries], list[Limit]] = {}
        for h in hits:
            groups.setdefault((h.counter.domain, h.counter.entries), []).append(h.counter.limit)
        decided: dict[tuple[str, Entries], tuple[KeyState, bool]] = {}
        out: list[Outcome] = []
        for h in hits:
            c = h.counter
            group = (c.domain, c.entries)
            taken = decided.get(group)
            if taken is None:
                st = self._state(c.domain, c.entries, c.key_hash, tuple(groups[group]), mono)
                allowed = _debit(st, mono, h.hits) if debit else _take(st, mono, h.hits)
                taken = decided[group] = (st, allowed)
            out.append(_outcome(*taken, c.limit, mono, h.hits))
        return out

    def _state(
        self, domain: str, entries: Entries, hashed: int, limits: Sequence[Limit], now: int
    ) -> KeyState:
        key: Key = ((_DOMAIN, domain), *entries)
        states = self.machine.states
        st = states.get(key)
        if st is None:
            fresh = KeyState(domain, KeyPolicy(entries, hashed, tuple(limits), True))
            with self.machine.lock:
                st = states.get(key)
                if st is None:
                    if len(states) >= self._max_keys:
                        self.machine.stats.untracked += 1
                        return fresh  # decided on a throwaway state: bounded memory wins
                    st = states[key] = fresh
        elif st.limits != limits and set(st.limits) != set(limits):
            st.set_limits(limits, now)  # only if the plan's limits changed (a reload)
        return st

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        raise TransferUnsupported("a sidecar's counters live on the servers it reports to")

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        raise TransferUnsupported("a sidecar's counters live on the servers it reports to")

    async def drop(self, low: int, high: int) -> int:
        raise TransferUnsupported("a sidecar's counters live on the servers it reports to")

    async def start_empty(self, low: int, high: int, since: int | None) -> None:
        raise TransferUnsupported("a sidecar's counters live on the servers it reports to")

    def stats(self) -> Sequence[StoreStat]:
        s = self.machine.stats
        return (
            StoreStat("ratekeeper_sidecar_keys", "Keys the sidecar tracks.", "gauge", s.tracked),
            StoreStat(
                "ratekeeper_sidecar_reports_failed_total",
                "Reports to a server that failed or timed out.",
                "counter",
                s.failed,
            ),
            StoreStat(
                "ratekeeper_sidecar_admitted_failing_open_total",
                "Hits admitted on keys whose server's latest report had failed.",
                "counter",
                s.admitted_failing_open,
            ),
        )

    def healthy(self) -> bool:
        return True  # every call is answered locally, reachable servers or not (fail open)

    async def close(self) -> None:
        """Nothing to release: the reporter belongs to the sidecar."""


def _take(st: KeyState, now: int, hits: int) -> bool:
    """Decide and count ``hits`` (0: whether one more would pass, counting nothing)."""
    if not hits:
        return decide(st, now, 0).allowed
    allowed = take(st, now, hits)
    bump(st.admitted if allowed else st.rejected, hits)
    return allowed


def _debit(st: KeyState, now: int, hits: int) -> bool:
    """Count ``hits`` as admitted whatever the local state, so they are reported (the local
    schedule advances only if it admits them: the server's answer then puts the key in debt).
    RLS never debits; this keeps the store whole for any other caller."""
    take(st, now, hits)
    if hits:
        bump(st.admitted, hits)
    return decide(st, now, 0).allowed


def _outcome(st: KeyState, allowed: bool, limit: Limit, now: int, hits: int) -> Outcome:
    """The counter of ``limit`` after the key's decision: its own lane's view (each counter
    of the server answers for itself, so headers name the binding one)."""
    lanes = ((st.earliest, st.pace, st.limit),) if st.lanes is None else [
        (lane.earliest, lane.pace, lane.limit) for lane in st.lanes
    ]  # fmt: skip
    for earliest, pace, lane_limit in lanes:
        # `is` first: the plan's limit is the very object the key's lane was built from, and
        # a dataclass's generated __eq__ compares field by field in Python.
        if (lane_limit is limit or lane_limit == limit) and pace.emission_ns:
            wait = 0 if allowed else pacing.wait_ns(earliest, now, pace, max(hits, 1))
            return Outcome(
                allowed,
                pacing.remaining(earliest, now, pace),
                max(0, earliest + pace.burst_ns - now),
                wait,
            )
    d = decide(st, now, 0)  # no lane of its own (a limit of 0, or the server's limits)
    retry = -1 if math.isinf(d.retry_after) else round(d.retry_after * NS_PER_SECOND)
    remaining = d.remaining if d.remaining is not None else 2**31 - 1
    return Outcome(allowed, remaining, round(d.reset_after * NS_PER_SECOND), retry)
