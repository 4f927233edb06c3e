"""The gate in front of the store: a pass-through for the whole space, a check otherwise."""

from __future__ import annotations

import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.errors import RequestError
from ratekeeper.protocol.ownership import WHOLE_SPACE, StoreGate

NOW = 1_700_000_000 * NS_PER_SECOND
HIT = Hit(Counter("d", (("k", "v"),), Limit(5, Unit.SECOND)), 1)


def test_the_whole_space_hands_out_the_stores_own_methods() -> None:
    store = MemoryStore()
    gate = StoreGate(store)
    assert gate.ownership is WHOLE_SPACE
    assert gate.hit == store.hit
    assert gate.debit == store.debit


class OwnsOne:
    """Owns the counter of :data:`HIT` only."""

    def owns(self, key_hash: int) -> bool:
        return key_hash == HIT.counter.key_hash


async def test_a_partial_ownership_counts_owned_counters_and_refuses_the_rest() -> None:
    gate = StoreGate(MemoryStore(), OwnsOne())
    (outcome,) = await gate.hit([HIT], NOW)
    assert outcome.remaining == 4
    (outcome,) = await gate.debit([HIT], NOW)
    assert outcome.remaining == 3
    other = Hit(Counter("d", (("k", "w"),), Limit(5, Unit.SECOND)), 1)
    with pytest.raises(RequestError, match="not owned here"):
        await gate.hit([HIT, other], NOW)
    with pytest.raises(RequestError, match="not owned here"):
        await gate.debit([other], NOW)
