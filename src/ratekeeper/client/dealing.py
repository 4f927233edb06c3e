"""A client's side of the dealt onset (``LimiterOptions.dealt_onset``): the fleets it hears of,
and the share it deals a key it starts tracking.

Every answer names the fleet its server hears from and this client's slot in it
(:mod:`ratekeeper.core.fleet_slots`). A key first seen here is dealt its share of one bucket by
the slots of the server that owns it (:mod:`ratekeeper.core.dealt`), so a fleet that meets a
cold key all at once admits about one bucket in its first round, not one per client.

A passive machine has no clock, and a key is created on a request thread before it reads one:
the last report cycle's instant is what the machine knows. The share's burst is in hand from the
key's first hit; its refill tokens are scheduled from the *next* cycle, which is no earlier than
the first hit (scheduled from the last one, a key first hit late in an interval would find up
to ``r·I`` of the fleet's refill already due). The deal holds until the next cycle after that:
every client that met the key in the same interval has then reported it, and an answer received
from then on ends it. With no answer at all (its server is down), the reporter's sweep ends it at
that report's deadline and the share grows back to the local bucket (fail open).

A deal costs a sparse key its first hits: a client whose slot holds no token of the burst
rejects a key it meets for the first time, although the fleet may be well within the policy.
So a key whose deal ended with its server saying it is within its policy (the last answer heard
set neither a rate nor a rejection) is remembered as *calm*, and a state made for it again (an
idle key is dropped, and made anew at its next hit) starts with the whole local bucket if the
key was calm or met here within the last :data:`CALM_S`: a client pays for a key's first hit
once, not once per idle gap. The bound on a cold onset holds for a key not met at this client
for ``CALM_S`` (docs/bounds.md, bound 6).
"""

from __future__ import annotations

from ratekeeper.client.keystate import FRESH, KeyState
from ratekeeper.client.routing import RoutingTable, route
from ratekeeper.core.dealt import deal
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["CALM_S", "MAX_CALM_KEYS", "Dealer"]

#: Seconds a key stays calm after its deal ended within the policy, or after it was last met here.
CALM_S = 60.0
#: Most calm keys remembered (a hash and an instant each); the oldest are forgotten first.
MAX_CALM_KEYS = 65_536


class Dealer:
    """Fleet and slot per server, and the deal of a fresh key; see the module docstring."""

    __slots__ = ("_calm", "_fleets", "_grace_ns", "_interval_ns")

    def __init__(self, interval_ns: int, timeout_ns: int) -> None:
        #: Per server address: (fleet, slot) as of its last answer saying so (replaced, not
        #: mutated, so request threads read it without a lock).
        self._fleets: dict[str, tuple[int, int]] = {}
        self._interval_ns = interval_ns
        #: Per calm key hash: when an answer ended its deal within the policy (written by the
        #: reporter as it applies answers, read by request threads: single dict operations).
        self._calm: dict[int, int] = {}
        self._grace_ns = timeout_ns

    def heard(self, address: str, answer: pb.ReportResponse, now: int) -> None:
        """Note the fleet and slot ``answer`` from ``address`` names, if it names them; forget
        calm keys past :data:`CALM_S` (or the oldest, beyond :data:`MAX_CALM_KEYS`)."""
        fleet = answer.fleet
        if fleet and self._fleets.get(address) != (fleet, answer.slot):
            self._fleets = {**self._fleets, address: (fleet, answer.slot)}
        calm = self._calm
        if len(calm) > MAX_CALM_KEYS:
            # a copy is one C call: request threads write to the table meanwhile, and dealt
            # states hold it, so it is pruned in place, never iterated or replaced
            snapshot = calm.copy()
            since = now - round(CALM_S * NS_PER_SECOND)
            recent = sorted((at, h) for h, at in snapshot.items() if at > since)
            kept = {h for _, h in recent[-MAX_CALM_KEYS // 2 :]}
            for hashed in snapshot.keys() - kept:
                calm.pop(hashed, None)

    def deal(self, st: KeyState, table: RoutingTable, cycle: int | None) -> None:
        """Deal the fresh ``st`` its share, its owner's slots as of ``table``, from ``cycle`` (the
        last report cycle's instant; ``None``: none yet, so nothing to deal from)."""
        limit = st.limit
        if cycle is None or limit is None or st.limit_blocks():
            return
        calm = self._calm.get(st.key_hash)
        if calm is not None and cycle - calm < CALM_S * NS_PER_SECOND:
            self._calm[st.key_hash] = cycle  # still met here: calm while it keeps being met
            return
        known = self._fleets.get(route(table, st))
        if known is None:
            return
        share = deal(limit, known[0], known[1], st.key_hash)
        if share is None:
            return
        start = cycle + self._interval_ns
        earliest = start + share.first_ns if share.first_ns else FRESH
        until = start + self._interval_ns
        st.deal(share.pace, earliest, until, until + self._grace_ns, self._calm)
