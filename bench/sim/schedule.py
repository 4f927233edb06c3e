"""The arrival schedule of a shape: pure and seeded, so every architecture sees the same traffic.

A shape's rate function becomes piecewise-constant *segments*; each segment is a Poisson process
(a Poisson number of arrivals, uniformly placed). Each arrival then gets a client (uniform) and a
key (by the shape's popularity), all from one generator seeded by the shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.sim.spec import KeySpec, RateSpec, Shape

__all__ = ["Schedule", "Segment", "build", "key_weights", "segments"]

NS = 1_000_000_000

#: ``(start_s, end_s, arrivals_per_s)``: a stretch of constant offered rate.
Segment = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Schedule:
    """Arrivals in time order; the three arrays are aligned."""

    #: Offset of each arrival from the run's start (ns), ascending.
    t_ns: npt.NDArray[np.int64]
    #: Which client offers it.
    client: npt.NDArray[np.int32]
    #: Which key (index into the shape's keys) it hits.
    key: npt.NDArray[np.int32]

    def for_client(self, client: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """One client's arrivals: (offsets, keys)."""
        mine = self.client == client
        return self.t_ns[mine], self.key[mine]


def _steady(rate: RateSpec, per_s: float, duration_s: float) -> list[Segment]:
    return [(0.0, duration_s, rate.multiple * per_s)]


def _step(rate: RateSpec, per_s: float, duration_s: float) -> list[Segment]:
    return [(0.0, rate.at_s, rate.before * per_s), (rate.at_s, duration_s, rate.multiple * per_s)]


def _boundary_burst(rate: RateSpec, per_s: float, duration_s: float) -> list[Segment]:
    # ``multiple`` limit-amounts per burst, half before the boundary and half after, so a fixed
    # window sees a full window's worth on each side of its reset.
    half = rate.width_ms / 1000
    burst_rate = rate.multiple * per_s / (2 * half)
    boundaries = np.arange(rate.every_s, duration_s - half + 1e-9, rate.every_s)
    return [(float(b) - half, float(b) + half, burst_rate) for b in boundaries]


_SEGMENTS: dict[str, Callable[[RateSpec, float, float], list[Segment]]] = {
    "steady": _steady,
    "step": _step,
    "boundary_burst": _boundary_burst,
}


def segments(rate: RateSpec, per_s: float, duration_s: float) -> list[Segment]:
    """The rate function of ``rate`` for a policy of ``per_s`` hits per second."""
    return _SEGMENTS[rate.kind](rate, per_s, duration_s)


def _uniform(keys: KeySpec) -> npt.NDArray[np.float64]:
    return np.ones(keys.count)


def _zipf(keys: KeySpec) -> npt.NDArray[np.float64]:
    return 1.0 / np.arange(1, keys.count + 1, dtype=np.float64) ** keys.s


def _hot(keys: KeySpec) -> npt.NDArray[np.float64]:
    if keys.count == 1:
        return np.ones(1)
    rest = (1.0 - keys.share) / (keys.count - 1)
    return np.array([keys.share] + [rest] * (keys.count - 1))


_WEIGHTS: dict[str, Callable[[KeySpec], npt.NDArray[np.float64]]] = {
    "uniform": _uniform,
    "zipf": _zipf,
    "hot": _hot,
}


def key_weights(keys: KeySpec) -> npt.NDArray[np.float64]:
    """Each key's probability of being hit (sums to 1)."""
    weights = _WEIGHTS[keys.popularity](keys)
    return weights / weights.sum()


def build(shape: Shape) -> Schedule:
    """The seeded schedule of ``shape``."""
    rng = np.random.default_rng(shape.seed)
    parts = []
    for start, end, per_s in segments(shape.rate, shape.limit.rate_per_s, shape.duration_s):
        n = rng.poisson(per_s * (end - start)) if per_s > 0 and end > start else 0
        parts.append(rng.uniform(start, end, n))
    times = np.sort(np.concatenate(parts)) if parts else np.empty(0)
    n = len(times)
    return Schedule(
        t_ns=(times * NS).astype(np.int64),
        client=rng.integers(0, shape.clients, n).astype(np.int32),
        key=rng.choice(shape.keys.count, size=n, p=key_weights(shape.keys)).astype(np.int32),
    )
