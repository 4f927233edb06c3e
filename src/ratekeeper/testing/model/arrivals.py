"""Request arrival processes, one per client: when each client is asked to decide a hit.

Every process is a pure description (a frozen dataclass); :meth:`Arrivals.times` turns it into
an iterator of instants (ns, virtual, from 0) for one client, drawing from that client's own
random stream, so a client's arrivals do not depend on what the others drew. Rates are per
client: a fleet offering ``R`` in total over ``N`` clients gives each ``R / N``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND

__all__ = ["Arrivals", "OnOff", "Poisson", "Steady", "Step"]


def _gap(rate: float, rng: random.Random) -> float:
    return -math.log(1.0 - rng.random()) / rate


@dataclass(frozen=True, slots=True)
class Arrivals:
    """No arrivals (the base of every process)."""

    def times(self, rng: random.Random, end: int) -> Iterator[int]:
        return iter(())

    def mean_rate(self, t_s: float) -> float:
        """Hits per second one client is offered on average over ``[0, t_s)`` seconds."""
        return 0.0


@dataclass(frozen=True, slots=True)
class _Rated(Arrivals):
    """A process at one constant ``rate`` per second."""

    rate: float

    def mean_rate(self, t_s: float) -> float:
        return self.rate


@dataclass(frozen=True, slots=True)
class Steady(_Rated):
    """Evenly spaced at ``rate`` per second, starting at a random phase."""

    def times(self, rng: random.Random, end: int) -> Iterator[int]:
        if self.rate <= 0:
            return
        gap = NS_PER_SECOND / self.rate
        t = rng.random() * gap
        while t < end:
            yield int(t)
            t += gap


@dataclass(frozen=True, slots=True)
class Poisson(_Rated):
    """Exponential gaps of mean ``1 / rate``: the sparse per-client share of a busy key."""

    def times(self, rng: random.Random, end: int) -> Iterator[int]:
        if self.rate <= 0:
            return
        t = _gap(self.rate, rng) * NS_PER_SECOND
        while t < end:
            yield int(t)
            t += _gap(self.rate, rng) * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class OnOff(Arrivals):
    """Poisson at ``rate`` for ``on_s`` seconds, then silent for ``off_s``, repeated."""

    rate: float
    on_s: float
    off_s: float

    def times(self, rng: random.Random, end: int) -> Iterator[int]:
        cycle = (self.on_s + self.off_s) * NS_PER_SECOND
        on = self.on_s * NS_PER_SECOND
        t = _gap(self.rate, rng) * NS_PER_SECOND
        while t < end:
            if t % cycle < on:
                yield int(t)
                t += _gap(self.rate, rng) * NS_PER_SECOND
            else:
                t += cycle - t % cycle

    def mean_rate(self, t_s: float) -> float:
        return self.rate * self.on_s / (self.on_s + self.off_s)


@dataclass(frozen=True, slots=True)
class Step(Arrivals):
    """Poisson at ``before`` per second until ``at_s`` seconds, then at ``after``."""

    before: float
    after: float
    at_s: float

    def times(self, rng: random.Random, end: int) -> Iterator[int]:
        at = int(self.at_s * NS_PER_SECOND)
        for t in Poisson(self.before).times(rng, min(at, end)):
            yield t
        for t in Poisson(self.after).times(rng, end - at):
            yield at + t

    def mean_rate(self, t_s: float) -> float:
        head = min(self.at_s, t_s)
        return (self.before * head + self.after * max(0.0, t_s - head)) / t_s
