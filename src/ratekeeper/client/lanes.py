"""The lanes of a key decided by several schedules (see :mod:`ratekeeper.client.keystate`).

A key with several lanes keeps them in ``KeyState.lanes``; its flat ``emission`` is an
:class:`AdmitAll`, so the decision path's one inline step advances every lane.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ratekeeper.core import pacing
from ratekeeper.core.limits import Limit

__all__ = ["AdmitAll", "Lane", "strictest_first"]


class Lane:
    """One schedule of a key with several: its own ``earliest`` and pace."""

    __slots__ = ("earliest", "limit", "pace")

    def __init__(self, earliest: int, pace: pacing.Pace, limit: Limit | None) -> None:
        #: First instant (monotonic ns) this lane admits the next hit.
        self.earliest = earliest
        #: How this lane paces hits.
        self.pace = pace
        #: The policy limit the lane enforces (``None``: a granted rate).
        self.limit = limit


class AdmitAll:
    """The ``emission`` of a key with several lanes: ``now + emission`` admits a hit in all.

    Only reached once the decision path has seen the key's latest ``earliest`` at or before
    ``now``, so every lane admits the hit; each lane's schedule is kept or restarted as
    :func:`~ratekeeper.core.pacing.admit` would, then moved by its own interval.
    """

    __slots__ = ("lanes",)

    def __init__(self, lanes: list[Lane]) -> None:
        self.lanes = lanes

    def __radd__(self, now: int) -> int:
        latest = -pacing.NEVER  # keystate.FRESH: before any lane's
        for lane in self.lanes:
            pace = lane.pace
            earliest = lane.earliest
            if earliest < now - pace.tolerance_ns:
                earliest = now - pace.burst_ns
            earliest += pace.emission_ns
            lane.earliest = earliest
            latest = max(latest, earliest)
        return latest


def _order(limit: Limit) -> tuple[int, float]:
    return (limit.period_ns, limit.rate_per_s)


def strictest_first(limits: Sequence[Limit]) -> tuple[Limit, ...]:
    """``limits`` shortest window first (then lowest rate); the same tuple if already so."""
    if isinstance(limits, tuple) and all(
        _order(a) <= _order(b) for a, b in itertools.pairwise(limits)
    ):
        return limits
    return tuple(sorted(limits, key=_order))
