"""The gate in front of the store: a pass-through for the whole space, a count otherwise."""

from __future__ import annotations

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.protocol.ownership import WHOLE_SPACE, MeteredOwnership, StoreGate
from ratekeeper.protocol.stats import Event, MemoryStats

NOW = 1_700_000_000 * NS_PER_SECOND
HIT = Hit(Counter("d", (("k", "v"),), Limit(5, Unit.SECOND)), 1)
OTHER = Hit(Counter("d", (("k", "w"),), Limit(5, Unit.SECOND)), 2)


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


class MeteredOne(OwnsOne):
    """Owns the counter of :data:`HIT` only, and records every charge."""

    def __init__(self) -> None:
        self.charged: list[tuple[int, int]] = []

    def charge(self, key_hash: int, hits: int) -> bool:
        self.charged.append((key_hash, hits))
        return self.owns(key_hash)


async def test_counters_not_owned_are_applied_anyway_and_counted() -> None:
    stats = MemoryStats()
    gate = StoreGate(MemoryStore(), OwnsOne(), stats)
    (outcome,) = await gate.hit([HIT], NOW)
    assert outcome.remaining == 4
    assert stats.events[Event.MISDIRECTED_KEY] == 0
    mine, other = await gate.debit([HIT, OTHER], NOW)
    assert (mine.remaining, other.remaining) == (3, 3)  # the stray counter was applied
    assert stats.events[Event.MISDIRECTED_KEY] == 1
    (other,) = await gate.hit([OTHER], NOW)
    assert other.remaining == 1
    assert stats.events[Event.MISDIRECTED_KEY] == 2


async def test_a_metered_ownership_is_charged_every_counters_hits() -> None:
    ownership = MeteredOne()
    assert isinstance(ownership, MeteredOwnership)
    assert not isinstance(OwnsOne(), MeteredOwnership)
    stats = MemoryStats()
    gate = StoreGate(MemoryStore(), ownership, stats)
    await gate.debit([HIT, OTHER], NOW)
    await gate.hit([Hit(HIT.counter, 0)], NOW)
    assert ownership.charged == [
        (HIT.counter.key_hash, 1),
        (OTHER.counter.key_hash, 2),
        (HIT.counter.key_hash, 0),
    ]
    assert stats.events[Event.MISDIRECTED_KEY] == 1
