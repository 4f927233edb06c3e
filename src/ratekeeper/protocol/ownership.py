"""The one place in front of the store where a replica checks that it owns what it counts.

A cluster splits the 64-bit key-hash space into slices, each owned by one replica; a replica
must count only the counters of its slices (another replica holds the rest). Every store call of
the protocol logic goes through a :class:`StoreGate`, so that check lives here and nowhere else.
A single server owns the :class:`WholeSpace`: its gate hands out the store's own methods, so the
check costs nothing on the hot path until there is something to check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ratekeeper.backends.store import Hit, Store
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import RequestError

__all__ = ["WHOLE_SPACE", "Ownership", "StoreCall", "StoreGate", "WholeSpace"]


class Ownership(Protocol):
    """Which counters this replica may count, by key hash (``Counter.key_hash``)."""

    def owns(self, key_hash: int) -> bool:
        """Whether the counter with ``key_hash`` belongs to this replica now."""
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
    """The store's :attr:`hit` and :attr:`debit`, refusing counters this replica does not own.

    Raises :class:`~ratekeeper.errors.RequestError` naming the first counter not owned (the
    cluster will answer with where it lives instead); otherwise exactly as :class:`Store`.
    """

    def __init__(self, store: Store, ownership: Ownership = WHOLE_SPACE) -> None:
        #: The store behind the gate.
        self.store = store
        #: What this replica owns.
        self.ownership = ownership
        whole = isinstance(ownership, WholeSpace)  # nothing to check, not even a call
        #: :meth:`Store.hit` of owned counters.
        self.hit: StoreCall = store.hit if whole else self._hit
        #: :meth:`Store.debit` of owned counters.
        self.debit: StoreCall = store.debit if whole else self._debit

    async def _hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self._check(hits)
        return await self.store.hit(hits, now)

    async def _debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self._check(hits)
        return await self.store.debit(hits, now)

    def _check(self, hits: Sequence[Hit]) -> None:
        owns = self.ownership.owns
        for hit in hits:
            if not owns(hit.counter.key_hash):
                counter = hit.counter
                raise RequestError(f"{counter.domain} {counter.entries} is not owned here")
