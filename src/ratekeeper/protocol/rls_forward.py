"""A cluster member's RLS answer: the descriptors another member owns are decided by their owner.

Any member is the entry point for ``ShouldRateLimit``. The decider plans a request as always;
with a :class:`Forwarder` it then routes each counted descriptor by its counters' key hash (the
hash the store and the ownership gate check; a descriptor's counters share it): descriptors
owned here are counted in the local store, the others are sent to their owner, one call per
owner, each with its ``hits_addend`` resolved. The owner's per-descriptor statuses are merged
into the answer as :class:`~ratekeeper.protocol.rls_plan.Forwarded` records, so the overall
code, quota mode and the ``RateLimit-*`` headers come out as if one server had decided them all.
A forwarded descriptor's rule stats are counted by its owner (which judged it), so the cluster
counts each descriptor once. An owner that cannot be reached is answered like a store failure
(:attr:`~ratekeeper.protocol.rls.RlsSettings.fail_closed`), and counted as
:attr:`~ratekeeper.protocol.stats.Event.FORWARD_ERROR`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitResponse

from ratekeeper.backends.store import Hit
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.rls_answer import STATUS_STORE_DOWN
from ratekeeper.protocol.rls_plan import Counted, Forwarded, RequestPlan

__all__ = ["DescriptorStatus", "Forwarder", "Routes", "forwarded", "merge", "route"]

#: One descriptor's status in a ``RateLimitResponse``.
DescriptorStatus: TypeAlias = RateLimitResponse.DescriptorStatus


class Forwarder(Protocol):
    """Where descriptors owned by other cluster members go. Event loop only."""

    def owner_of(self, key_hash: int) -> str | None:
        """The address of the member owning ``key_hash``; ``None`` when it is this member."""
        ...

    async def forward(
        self, owner: str, domain: str, descriptors: Sequence[bytes]
    ) -> Sequence[DescriptorStatus]:
        """``owner``'s statuses of ``descriptors`` (encoded ``RateLimitDescriptor``s of
        ``domain``), aligned with them; the owner answers them itself, never forwarding again.

        Raises :class:`~ratekeeper.errors.ForwardError` when no answer can be had (the owner is
        unreachable or too slow, or its answer does not fit the request).
        """
        ...


@dataclass(slots=True)
class Routes:
    """Where a planned request's counted descriptors are decided."""

    #: The request's domain.
    domain: str
    #: The store hits of the descriptors owned here, in plan order.
    local_hits: list[Hit]
    #: Owner address → the indexes (into the plan's answers) of the descriptors it owns.
    remote: dict[str, list[int]]


def route(plan: RequestPlan, owner_of: Callable[[int], str | None]) -> Routes | None:
    """Which member decides each of ``plan``'s counted descriptors; ``None`` when all are owned
    here (the plan is then answered exactly as a single server answers it)."""
    remote: dict[str, list[int]] | None = None
    domain = ""
    for index, answer in enumerate(plan.answers):
        if isinstance(answer, Counted) and answer.counted:
            counter = answer.counted[0].counter
            owner = owner_of(counter.key_hash)
            if owner is not None:
                domain = counter.domain
                if remote is None:
                    remote = {}
                remote.setdefault(owner, []).append(index)
    if remote is None:
        return None
    away = {index for indexes in remote.values() for index in indexes}
    local = [
        hit
        for index, answer in enumerate(plan.answers)
        if isinstance(answer, Counted) and index not in away
        for hit in answer.counted
    ]
    return Routes(domain, local, remote)


#: The limits headers show of forwarded statuses, by amount (only the amount is shown); the
#: memo starts over when full.
_SHOWN_LIMITS: dict[int, Limit] = {}
_MAX_SHOWN_LIMITS = 1024


def _shown_limit(amount: int) -> Limit:
    limit = _SHOWN_LIMITS.get(amount)
    if limit is None:
        if len(_SHOWN_LIMITS) >= _MAX_SHOWN_LIMITS:
            _SHOWN_LIMITS.clear()
        limit = _SHOWN_LIMITS[amount] = Limit(amount)
    return limit


def forwarded(status: DescriptorStatus, quota: bool) -> Forwarded:
    """The answer record of one status an owner sent."""
    shown = None
    if status.HasField("current_limit"):
        seconds = status.duration_until_reset.seconds
        outcome = Outcome(
            status.code == rls_wire.OK, status.limit_remaining, seconds * NS_PER_SECOND, 0
        )
        shown = (_shown_limit(status.current_limit.requests_per_unit), outcome)
    return Forwarded(rls_wire.status_field(status.SerializeToString()), status.code, quota, shown)


def merge(
    plan: RequestPlan,
    remote: dict[str, list[int]],
    answered: dict[str, Sequence[DescriptorStatus] | None],
    fail_closed: bool,
) -> list[bytes | Counted | Forwarded]:
    """``plan``'s answers with each remote descriptor replaced by its owner's status, from
    ``answered`` (owner → statuses aligned with ``remote[owner]``, ``None`` if it failed)."""
    answers: list[bytes | Counted | Forwarded] = list(plan.answers)
    down_code = rls_wire.OVER_LIMIT if fail_closed else rls_wire.OK
    for owner, indexes in remote.items():
        statuses = answered[owner]
        for position, index in enumerate(indexes):
            planned = answers[index]
            assert isinstance(planned, Counted)
            if statuses is None:
                down = STATUS_STORE_DOWN[fail_closed]
                answers[index] = Forwarded(down, down_code, planned.quota, None)
            else:
                answers[index] = forwarded(statuses[position], planned.quota)
    return answers
