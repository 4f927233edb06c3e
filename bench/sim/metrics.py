"""The figures of a run, as pure functions of what the clients recorded.

Times are nanoseconds from the run's start. The *policy* over a window of length ``w`` allows
``r·w + b`` hits (refill rate ``r``, burst ``b`` = the limit's capacity): that is the most a token
bucket that starts full can admit, and what a fixed window of the same amount admits at worst
(``b`` either side of a reset).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ratekeeper.core import token_bucket
from ratekeeper.core.limits import NS_PER_SECOND, Limit

__all__ = [
    "KeyFigures",
    "allowance",
    "counter_increase",
    "counter_rate",
    "false_rejections",
    "ideal_admits",
    "key_figures",
    "overshoot",
    "percentiles",
    "worst_window",
]

Times = npt.NDArray[np.int64]


def percentiles(values: npt.ArrayLike, qs: Sequence[float]) -> list[float]:
    """The ``qs`` quantiles (0 to 1) of ``values``, as observed values (no interpolation)."""
    data = np.asarray(values)
    if data.size == 0:
        return [float("nan")] * len(qs)
    return [float(np.quantile(data, q, method="higher")) for q in qs]


def allowance(limit: Limit, window_ns: int) -> float:
    """``r·w + b``: the most hits the policy admits in any window of ``window_ns``."""
    return limit.amount * window_ns / limit.period_ns + limit.capacity


def worst_window(times: Times, window_ns: int) -> int:
    """The most ``times`` (sorted) falling in any half-open window ``[t, t + window_ns)``."""
    if times.size == 0:
        return 0
    ends = np.searchsorted(times, times + window_ns, side="left")
    return int((ends - np.arange(times.size)).max())


def overshoot(observed: float, allowed: float) -> float:
    """How far ``observed`` exceeds ``allowed``, as a fraction of it (0 when within)."""
    return max(0.0, observed / allowed - 1.0) if allowed > 0 else float(observed > 0)


def ideal_admits(times: Times, limit: Limit) -> int:
    """How many of the offered ``times`` an exact token bucket (starting full) admits."""
    bucket = token_bucket.new_bucket(limit, 0)
    return sum(token_bucket.take(bucket, limit, int(t)).allowed for t in times)


def false_rejections(times: Times, admitted: npt.NDArray[np.bool_], limit: Limit) -> int:
    """Rejections made while the policy still had room, given what was actually admitted.

    A bucket (starting full) is debited by every admitted hit; a rejection is false when that
    bucket holds at least one whole token at the moment of rejecting.
    """
    bucket = token_bucket.new_bucket(limit, 0)
    false = 0
    for t, ok in zip(times.tolist(), admitted.tolist(), strict=True):
        token_bucket.refill(bucket, limit, t)
        if ok:
            token_bucket.debit(bucket, limit, t, 1)
        elif token_bucket.available(bucket, limit) >= 1:
            false += 1
    return false


def counter_rate(series: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Per-second increase of a sampled counter ``[(t, value), ...]`` between ``t0`` and ``t1``.

    Uses the first and last samples inside ``[t0, t1]``; NaN without two of them.
    """
    inside = [(t, v) for t, v in series if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return float("nan")
    (ta, va), (tb, vb) = inside[0], inside[-1]
    return (vb - va) / (tb - ta)


def counter_increase(values: Sequence[float]) -> float:
    """How much a sampled counter grew, across resets (a restarted process starts from 0)."""
    return sum(b - a if b >= a else b for a, b in itertools.pairwise(values))


@dataclass(frozen=True, slots=True)
class KeyFigures:
    """Accuracy figures of one key over one run."""

    offered: int
    admitted: int
    #: What an exact token bucket would have admitted of the same offered hits.
    ideal: int
    #: Worst 1-second sliding window of admitted hits against ``r·1s + b``.
    window_overshoot: float
    #: Admitted hits in the worst 1-second window, divided by ``r`` hits (2.0: twice the rate).
    peak_window_ratio: float
    #: All admitted hits against ``r·T + b`` over the run's duration ``T``.
    run_overshoot: float
    #: Rejections while the bucket fed by the admitted hits still held a token.
    false_rejections: int

    @property
    def under_limit(self) -> bool:
        """Whether an exact bucket would have admitted every offered hit of this key.

        On such a key every rejection is false, however the decisions were timed; on a key
        over its limit *which* hits are rejected is arbitrary, so a rejection "with room" there
        may only mean the admitted hits were spaced differently from an exact bucket's.
        """
        return self.ideal == self.offered


def key_figures(
    times: Times, admitted: npt.NDArray[np.bool_], limit: Limit, duration_ns: int
) -> KeyFigures:
    """The figures of one key from its decisions (``times`` sorted, ``admitted`` aligned)."""
    admitted_times = times[admitted]
    worst = worst_window(admitted_times, NS_PER_SECOND)
    return KeyFigures(
        offered=int(times.size),
        admitted=int(admitted_times.size),
        ideal=ideal_admits(times, limit),
        window_overshoot=overshoot(worst, allowance(limit, NS_PER_SECOND)),
        peak_window_ratio=worst / (limit.amount * NS_PER_SECOND / limit.period_ns),
        run_overshoot=overshoot(admitted_times.size, allowance(limit, duration_ns)),
        false_rejections=false_rejections(times, admitted, limit),
    )
