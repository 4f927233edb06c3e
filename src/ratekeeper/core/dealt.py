"""A fleet's first round on a cold key, dealt out: each client's share of one token bucket.

Before any client has been answered about a key, each of ``N`` clients decides alone. If each
holds the whole local bucket, a step from silence to heavy traffic admits up to ``N·b`` in the
first round (issue 11, bound 6). Dealing the bucket out instead gives the fleet one bucket between
them: number the tokens the bucket admits from the start, ``0, 1, 2, ...``; token ``i`` is
available ``max(0, i - b + 1)·T`` after the start (``b`` the capacity, ``T = 1/r`` the emission
interval), which is the bucket's own schedule. The client in slot ``k`` of ``N`` gets the tokens
``i ≡ j (mod N)`` with ``j = (k + key_hash) mod N``: each key starts its round robin at a
different slot, so over many keys no slot is favoured.

Client ``j``'s tokens below ``b`` are in hand at the start; its later ones arrive every ``N·T``.
That is a GCRA schedule (:mod:`ratekeeper.core.pacing`) of emission ``N·T`` and burst
``(b - 1 - j)·T`` when ``j < b`` (its first hit restarts the schedule that far behind, and the
tolerance equals the burst, so an idle client never holds more than its dealt burst), and, when
``j >= b``, of no burst and a first token ``(j - b + 1)·T`` after the start. Summed over the
fleet, at most ``b + r·t`` tokens are available ``t`` after the start: one bucket. For one client
the schedule is never looser than the policy's own pace (its emission is ``N`` times as long, its
burst at most the policy's), so dealing cannot admit a hit the local limiter forbids.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core import pacing
from ratekeeper.core.limits import Limit

__all__ = ["Deal", "deal"]


@dataclass(frozen=True, slots=True)
class Deal:
    """One client's share of a key's bucket."""

    #: How the client paces the key while the deal holds.
    pace: pacing.Pace
    #: When the client's first token is available, after the deal's start (ns; 0: in hand).
    first_ns: int


def deal(limit: Limit, fleet: int, slot: int, key_hash: int) -> Deal | None:
    """The share of client ``slot`` of ``fleet`` for a key hashed ``key_hash`` under ``limit``
    (``None``: nothing to deal, a fleet of one or a limit that admits nothing)."""
    policy = pacing.policy_pace(limit)
    if policy is None or fleet <= 1:
        return None
    emission = policy.emission_ns
    j = (slot + key_hash) % fleet
    capacity = limit.capacity
    if j < capacity:
        burst = (capacity - 1 - j) * emission
        return Deal(pacing.Pace(fleet * emission, burst, burst), 0)
    return Deal(pacing.Pace(fleet * emission, 0, 0), (j - capacity + 1) * emission)
