"""One key's client-side state, and the pure steps on it: decide, explain, apply an instruction.

See :mod:`ratekeeper.client.state` for who writes which field from which thread.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ratekeeper.client.policy import KeyPolicy, local_limit
from ratekeeper.core import pacing
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import limit_to_spec, spec_to_limit

__all__ = ["Decision", "KeyState", "apply_instruction", "bump", "count_value", "decision", "rested"]


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


def count_value(counter: itertools.count[int]) -> int:
    """The next value ``counter`` would yield, without advancing it (``repr`` is ``count(N)``)."""
    return int(repr(counter)[6:-1])


def bump(counter: itertools.count[int], hits: int) -> None:
    """Advance ``counter`` by ``hits``, each step atomic (the loop runs in C)."""
    if hits == 1:
        next(counter)
    else:
        deque(itertools.islice(counter, hits), maxlen=0)


def rested(st: KeyState, now: int) -> bool:
    """Whether a fresh state would decide exactly as ``st`` does (so ``st`` may be dropped)."""
    return not st.granted_until and st.earliest <= max(0, now - st.burst)


def apply_instruction(st: KeyState, instruction: pb.KeyInstruction, received_at: int) -> None:
    """Fold a server's instruction into ``st``; its durations run from ``received_at``."""
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


def decision(st: KeyState, now: int, hits: int, *, allowed: bool) -> Decision:
    """Explain the decision just taken on ``st`` for ``hits`` at ``now``."""
    if st.limit is None:
        wait = max(0, st.earliest - now)
        return Decision(allowed, None, 0.0 if allowed else wait / NS_PER_SECOND, 0.0, None)
    pace = st.pace
    wait = 0 if allowed else pacing.wait_ns(st.earliest, now, pace, max(hits, 1))
    remaining = pacing.remaining(st.earliest, now, pace) if pace.emission_ns else 0
    reset = max(0, st.earliest + pace.burst_ns - now)
    retry = float("inf") if wait < 0 else wait / NS_PER_SECOND
    return Decision(allowed, remaining, retry, reset / NS_PER_SECOND, st.limit)
