"""The numbers the bounds are stated in, computed from a :class:`~.fleet.Run`.

:func:`exact_bucket` is the reference: one token bucket seeing every hit of the fleet in time
order, as a single perfectly informed limiter would. The protocol is judged against it and
against the policy's envelope ``r·T + b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Limit, parse_limits

__all__ = ["KeyStats", "envelope", "exact_bucket", "key_stats", "window_max"]


def envelope(limit: Limit, seconds: float) -> float:
    """The most any exact bucket admits in ``seconds``: ``r·T + b``."""
    return limit.rate_per_s * seconds + limit.capacity


def exact_bucket(times: Sequence[int], limit: Limit) -> int:
    """Hits an exact token bucket (full at the start) admits of ``times`` (sorted ns)."""
    per_token = limit.period_ns / limit.amount if limit.amount else float("inf")
    cap = limit.capacity * per_token
    # virtual scheduling: the bucket is ``tat - now`` of emission time in debt
    tat = float(times[0]) - cap if times else 0.0
    admitted = 0
    for t in times:
        tat = max(tat, t - cap)
        if tat + per_token <= t + 1e-6:
            tat += per_token
            admitted += 1
    return admitted


def window_max(times: Sequence[int], admitted: Sequence[bool], window_ns: int) -> int:
    """The most hits admitted in any window of ``window_ns`` (sliding over admissions)."""
    got = [t for t, ok in zip(times, admitted, strict=True) if ok]
    best, lo = 0, 0
    for hi, t in enumerate(got):
        while got[lo] <= t - window_ns:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@dataclass(frozen=True, slots=True)
class KeyStats:
    """One key over one run."""

    offered: int
    admitted: int
    #: What an exact bucket would have admitted of the same hits.
    exact: int
    #: ``r·T + b`` over the run.
    envelope: float
    #: Admitted in the first second after ``onset_s`` (the cold-onset measure).
    first_second: int

    @property
    def rejected(self) -> int:
        return self.offered - self.admitted

    @property
    def overshoot(self) -> float:
        """Admitted beyond the envelope, as a fraction of ``r·T``-ish (the envelope)."""
        return (self.admitted - self.envelope) / self.envelope

    @property
    def rejected_fraction(self) -> float:
        return self.rejected / self.offered if self.offered else 0.0


def key_stats(
    times: Sequence[int],
    admitted: Sequence[bool],
    limit_text: str,
    duration_s: float,
    onset_s: float = 0.0,
) -> KeyStats:
    """The measurements of one key's decisions under the fleet's inline limit."""
    limit = min(parse_limits(limit_text), key=lambda lim: (lim.period_ns, lim.rate_per_s))
    lo = int(onset_s * NS_PER_SECOND)
    hi = lo + NS_PER_SECOND
    first = sum(1 for t, ok in zip(times, admitted, strict=True) if ok and lo <= t < hi)
    return KeyStats(
        offered=len(times),
        admitted=sum(admitted),
        exact=exact_bucket(times, limit),
        envelope=envelope(limit, duration_s),
        first_second=first,
    )
