"""Spreading admissions evenly in time: the client's local decision, as pure maths.

A client decides each hit from one number per key, ``earliest``: the first instant the next hit
may be admitted. This is the generic cell rate algorithm (virtual scheduling) written so that the
admission test is a single comparison and the schedule survives a change of pace unchanged. A
:class:`Pace` has an emission interval ``T``, a ``tolerance`` and a ``burst``. A hit at ``now`` is
admitted if ``earliest <= now``; then, if ``earliest`` lags ``now`` by at most the tolerance, the
schedule is kept (``earliest += T``), and otherwise it restarts ``burst`` behind now
(``earliest = now - burst + T``). Two paces use it:

* the **policy pace** (the local limiter, defence in depth): ``T = period / amount`` and
  ``tolerance = burst = (capacity - 1) * T``, which is the policy's token bucket exactly, so one
  client alone never admits more than the policy would, in any window;
* a **granted pace** (a server's admit rate): ``T = 1 / rate``, ``tolerance = T / 2`` (or the
  burst, if larger) and the policy's burst, capped as below: a burstless share rejects a large
  fraction of Poisson traffic that stays well within it. Between bursts, hits are spaced
  deterministically, so a small limit such as 5/s admits exactly 5 in each second where a coin
  flip per hit would let the count wander. The tolerance is lateness credit: hits arrive when
  requests do, a little after their slot, and without it each admission would push the schedule
  back by that delay (an arrival every 20 ms against a 200 ms slot loses 5%). A schedule that
  has fallen further behind restarts its burst behind ``now``.

A granted pace is never looser than the policy pace: ``T`` at least the policy's, and a
tolerance and a burst of at most ``tau + T - T_policy`` (``tau`` the policy's). Then, whichever
pace each hit is decided under, ``earliest`` never falls below the value the policy pace alone
would have reached (induction over admissions: each admission requires ``earliest <= now`` and
moves ``earliest`` at least as far as the policy pace would), so switching paces can never admit
a hit the policy forbids.

A *reject-for* instruction folds into the same number (:func:`reject_until`), so the hot path has
no separate check for it. Times are integer nanoseconds on the caller's monotonic clock; nothing
here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Limit

__all__ = [
    "NEVER",
    "Pace",
    "admit",
    "granted_pace",
    "policy_pace",
    "reject_until",
    "remaining",
    "wait_ns",
]

#: An ``earliest`` that is never reached (about 146 years of nanoseconds; still a small int).
NEVER = 1 << 62


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast hits may be admitted."""

    #: Nanoseconds each admitted hit moves the schedule: ``1 / rate``.
    emission_ns: int
    #: How far (ns) the schedule may lag behind now and still be kept.
    tolerance_ns: int
    #: How far (ns) behind now a restarted schedule begins: ``(capacity - 1) * T``.
    burst_ns: int


def policy_pace(limit: Limit) -> Pace | None:
    """The local limiter for ``limit`` (``None``: the limit admits nothing).

    The emission interval is rounded up, so rounding can only make the local limiter stricter.
    """
    if limit.amount == 0 or limit.capacity == 0:
        return None
    emission = -(-limit.period_ns // limit.amount)
    burst = (limit.capacity - 1) * emission
    return Pace(emission, burst, burst)


def granted_pace(rate: float, policy: Pace) -> Pace:
    """The pace for a server-granted ``rate`` (hits/s), never looser than ``policy``."""
    if math.isinf(rate):
        return policy
    emission = math.ceil(NS_PER_SECOND / rate) if rate > 0.0 else NEVER
    emission = min(max(policy.emission_ns, emission), NEVER)
    slack = policy.tolerance_ns + emission - policy.emission_ns
    # the share keeps the policy's burst (never more than the slack, so never looser than the
    # policy): a burstless share rejects noisy traffic the policy would admit
    burst = min(policy.burst_ns, slack)
    return Pace(emission, max(min(emission // 2, slack), burst), burst)


def _start(earliest: int, now: int, pace: Pace) -> int:
    """Where the schedule stands for a hit at ``now``: kept, or restarted behind now."""
    return earliest if earliest >= now - pace.tolerance_ns else now - pace.burst_ns


def admit(earliest: int, now: int, pace: Pace, hits: int = 1) -> int | None:
    """The new ``earliest`` if ``hits`` are admitted at ``now``; ``None`` to reject them."""
    start = _start(earliest, now, pace)
    if start + (hits - 1) * pace.emission_ns > now:
        return None
    return start + hits * pace.emission_ns


def remaining(earliest: int, now: int, pace: Pace) -> int:
    """Hits admissible right now, back to back."""
    start = _start(earliest, now, pace)
    if start > now:
        return 0
    return (now - start) // pace.emission_ns + 1


def wait_ns(earliest: int, now: int, pace: Pace, hits: int = 1) -> int:
    """Nanoseconds until ``hits`` would be admitted at once (0: now); ``-1`` if never."""
    extra = (hits - 1) * pace.emission_ns
    if extra > pace.tolerance_ns or earliest >= NEVER:
        return -1
    return max(0, earliest + extra - now)


def reject_until(earliest: int, until: int) -> int:
    """``earliest`` moved so that no hit is admitted before ``until`` (none is ever forgiven)."""
    return max(earliest, until)
