"""The memory store's hash-range layout: a range visits only its shards, and imports respect the
key cap without handing quota back (the cases every store shares are in tests/conformance)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE

T0 = 1_700_000_000 * NS_PER_SECOND
LIMIT = Limit(10, Unit.HOUR)  # no refill to speak of within a test


def counter(key: str, limit: Limit = LIMIT) -> Counter:
    return Counter("d", (("k", key),), limit)


class _Untouchable(dict[Any, Any]):
    """A shard that fails the test if anything walks it."""

    def items(self) -> Any:
        raise AssertionError("a shard outside the range was walked")

    def __iter__(self) -> Any:
        raise AssertionError("a shard outside the range was walked")

    def clear(self) -> None:
        raise AssertionError("a shard outside the range was cleared")


async def test_a_counter_lives_in_the_shard_of_its_hash_range() -> None:
    store = MemoryStore(shards=16)
    counters = [counter(str(i)) for i in range(500)]
    await store.hit([Hit(c, 1) for c in counters], T0)
    width = HASH_SPACE // 16
    for c in counters:
        assert c.identity in store._shards[c.key_hash // width]


@pytest.mark.parametrize("cut", [False, True])
async def test_export_and_drop_visit_only_the_shards_of_the_range(cut: bool) -> None:
    store = MemoryStore(shards=16)
    counters = [counter(str(i)) for i in range(2000)]
    await store.hit([Hit(c, 1) for c in counters], T0)
    width = HASH_SPACE // 16
    low, high = 3 * width + (width // 3 if cut else 0), 7 * width - (width // 5 if cut else 0)
    for i in [*range(3), *range(7, 16)]:
        store._shards[i] = _Untouchable(store._shards[i])
    inside = {c for c in counters if low <= c.key_hash < high}
    snapshot = await store.export(low, high, T0)
    assert {item.counter for item in snapshot.counters} == inside
    assert await store.drop(low, high) == len(inside)


async def test_an_exhausted_counter_is_imported_past_the_cap_and_a_full_one_is_not() -> None:
    store = MemoryStore(max_keys=2, shards=1)
    await store.debit([Hit(counter("a"), 100), Hit(counter("b"), 100)], T0)  # both exhausted
    source = MemoryStore()
    await source.debit([Hit(counter("owes"), 50)], T0)
    await source.hit([Hit(counter("half"), 5)], T0)
    await source.hit([Hit(counter("fresh", Limit(10)), 1)], T0)  # full again a second later
    snapshot = await source.export(0, HASH_SPACE, T0 + NS_PER_SECOND)
    assert len(snapshot.counters) == 3
    assert await store.import_(snapshot, T0 + NS_PER_SECOND) == 1
    assert len(store) == 3  # one past the cap: dropping a key in debt would free it
    assert store.counts().evictions == 1  # "half" could not find room, as a new key could not
    for key in ("a", "b", "owes"):
        (outcome,) = await store.hit([Hit(counter(key), 1)], T0 + NS_PER_SECOND)
        assert not outcome.allowed, key


async def test_a_partly_used_import_makes_room_as_a_new_key_does() -> None:
    store = MemoryStore(max_keys=2, shards=1)
    await store.hit([Hit(counter("light"), 1), Hit(counter("heavy"), 9)], T0)
    source = MemoryStore()
    await source.hit([Hit(counter("moved"), 4)], T0)
    assert await store.import_(await source.export(0, HASH_SPACE, T0), T0) == 1
    assert len(store) == 2
    (moved,) = await store.hit([Hit(counter("moved"), 0)], T0)
    assert moved.remaining == 6
    (heavy,) = await store.hit([Hit(counter("heavy"), 0)], T0)
    assert heavy.remaining == 1  # the fullest ("light") made room, as the eviction rule says


async def test_a_snapshot_holding_a_counter_outside_its_range_is_refused_whole() -> None:
    store = MemoryStore()
    inside, outside = sorted((counter("x"), counter("y")), key=lambda c: c.key_hash)
    bad = Snapshot(
        0,
        outside.key_hash,
        (CounterSnapshot(inside, (LIMIT.capacity * LIMIT.period_ns, 0)),
         CounterSnapshot(outside, (0, 0))),
    )  # fmt: skip
    with pytest.raises(ValueError, match="outside its snapshot's hash range"):
        await store.import_(bad, T0)
    assert len(store) == 0


async def test_a_range_must_lie_in_the_hash_space() -> None:
    store = MemoryStore()
    with pytest.raises(ValueError, match="not a hash range"):
        await store.export(5, 4, T0)
    with pytest.raises(ValueError, match="not a hash range"):
        await store.drop(0, HASH_SPACE + 1)


@settings(max_examples=60, deadline=None)
@given(
    theirs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 15)), max_size=12),
    ours=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 15)), max_size=12),
)
async def test_an_import_never_frees_a_limited_key(
    theirs: list[tuple[int, int]], ours: list[tuple[int, int]]
) -> None:
    """Into a store at its cap: whatever it holds, every key limited on either side stays so."""
    source, store = MemoryStore(), MemoryStore(max_keys=3, shards=1)
    for side, ops in ((source, theirs), (store, ours)):
        for key, n in ops:
            await side.debit([Hit(counter(str(key)), n)], T0)
    limited: set[Counter] = set()
    for side in (source, store):
        for item in (await side.export(0, HASH_SPACE, T0)).counters:
            (o,) = await side.hit([Hit(item.counter, 0)], T0)
            if o.remaining == 0:
                limited.add(item.counter)
    await store.import_(await source.export(0, HASH_SPACE, T0), T0)
    for c in limited:
        assert (await store.hit([Hit(c, 0)], T0))[0].remaining == 0, c
