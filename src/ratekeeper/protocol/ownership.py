"""The one place in front of the store where a replica checks that it owns what it counts.

A cluster splits the 64-bit key-hash space into slices, each owned by one replica; a replica
should count only the counters of its slices (another replica holds the rest). Every store call
of the protocol logic goes through a :class:`StoreGate`, so that check lives here and nowhere
else. A counter that reached the wrong replica (a client or a forwarder routing by an older
assignment) is still applied — requests must flow, and the sender learns the newer assignment
from the answer — and counted as :attr:`~ratekeeper.protocol.stats.Event.MISDIRECTED_KEY`.

A single server owns the :class:`WholeSpace`: its gate hands out the store's own methods, so the
check costs nothing on the hot path until there is something to check. A cluster member's
ownership is a :class:`MeteredOwnership`: the gate also tells it how many hits each counter took,
which is the per-slice load the member reports to the assigner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from ratekeeper.backends.store import Hit, Store
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol.stats import Event, MemoryStats, StatsSink

__all__ = ["WHOLE_SPACE", "MeteredOwnership", "Ownership", "StoreCall", "StoreGate", "WholeSpace"]


class Ownership(Protocol):
    """Which counters this replica may count, by key hash (``Counter.key_hash``)."""

    def owns(self, key_hash: int) -> bool:
        """Whether the counter with ``key_hash`` belongs to this replica now."""
        ...


@runtime_checkable
class MeteredOwnership(Ownership, Protocol):
    """An ownership that also measures load: every hit applied is charged to its slice."""

    def charge(self, key_hash: int, hits: int) -> bool:
        """Count ``hits`` applied to the counter with ``key_hash``; whether it is owned here.

        Called once per counter of every store call, on the event loop: must not block."""
        ...


class WholeSpace:
    """Owns every key: a replica that is the only one."""

    def owns(self, key_hash: int) -> bool:
        return True


#: The ownership of a replica that is the only one.
WHOLE_SPACE = WholeSpace()


#: ``Store.hit`` and ``Store.debit``: hits in, outcomes aligned with them out.
StoreCall = Callable[[Sequence[Hit], int], Awaitable[list[Outcome]]]


class StoreGate:
    """The store's :attr:`hit` and :attr:`debit`, noting counters this replica does not own.

    Exactly as :class:`Store` (same results, same errors): a counter not owned is applied too,
    and counted once per call as :attr:`Event.MISDIRECTED_KEY` in ``stats``.
    """

    def __init__(
        self, store: Store, ownership: Ownership = WHOLE_SPACE, stats: StatsSink | None = None
    ) -> None:
        #: The store behind the gate.
        self.store = store
        #: What this replica owns.
        self.ownership = ownership
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._charge: Callable[[int, int], bool] = (
            ownership.charge
            if isinstance(ownership, MeteredOwnership)
            else lambda key_hash, _hits: ownership.owns(key_hash)
        )
        whole = isinstance(ownership, WholeSpace)  # nothing to check, not even a call
        #: :meth:`Store.hit`, noting counters not owned.
        self.hit: StoreCall = store.hit if whole else self._hit
        #: :meth:`Store.debit`, noting counters not owned.
        self.debit: StoreCall = store.debit if whole else self._debit

    async def _hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self._check(hits)
        return await self.store.hit(hits, now)

    async def _debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self._check(hits)
        return await self.store.debit(hits, now)

    def _check(self, hits: Sequence[Hit]) -> None:
        self.charge_each([hit.counter.key_hash for hit in hits], [hit.hits for hit in hits])

    def charge_each(self, key_hashes: Sequence[int], hits: Sequence[int]) -> None:
        """What a store call through the gate notes for counters ``key_hashes`` given ``hits``
        (aligned): charged to their slices, and those not owned counted as misdirected. The
        report fast path calls it before debiting the memory store directly."""
        charge = self._charge
        misdirected = 0
        for hashed, n in zip(key_hashes, hits, strict=True):
            if not charge(hashed, n):
                misdirected += 1
        for _ in range(misdirected):
            self._stats.count(Event.MISDIRECTED_KEY)
