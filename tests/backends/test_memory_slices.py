"""MemoryStore's shards are slices of the hash space: a range is found without a scan, and
imports keep the store's eviction rules (the conformance suite checks the decisions)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ratekeeper.backends.memory as memory
from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot
from ratekeeper.core.keys import HASH_BITS
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE

S = NS_PER_SECOND
NOW = 1_763_700_000 * S
LIMIT = Limit(10, Unit.MINUTE)


def counters(n: int, limit: Limit = LIMIT) -> list[Counter]:
    return [Counter("d", (("k", str(i)),), limit) for i in range(n)]


class CountingDict(dict[Any, Any]):
    """A shard that counts how often it is walked."""

    walked = 0

    def items(self) -> Any:
        self.walked += 1
        return super().items()

    def __iter__(self) -> Any:
        self.walked += 1
        return super().__iter__()


def counting(store: MemoryStore) -> list[CountingDict]:
    shards = [CountingDict(shard) for shard in store._shards]
    store._shards = shards  # type: ignore[assignment]
    return shards


@pytest.mark.parametrize("shards", [1, 2, 16, 64])
async def test_a_counters_shard_is_the_top_bits_of_its_key_hash(shards: int) -> None:
    store = MemoryStore(shards=shards)
    await store.hit([Hit(c, 1) for c in counters(300)], NOW)
    bits = shards.bit_length() - 1
    for i, shard in enumerate(store._shards):
        for domain, entries, _ in shard:
            assert Counter("d", entries, LIMIT).key_hash >> (HASH_BITS - bits) == i
            assert domain == "d"


async def test_export_walks_only_the_shards_the_range_touches() -> None:
    store = MemoryStore(shards=16)
    held = counters(400)
    await store.hit([Hit(c, 3) for c in held], NOW)
    shards = counting(store)
    width = HASH_SPACE // 16
    low, high = 3 * width + width // 3, 5 * width  # cuts shard 3, takes shard 4 whole
    snapshot = await store.export(low, high, NOW + S)
    assert [shard.walked for shard in shards] == [0, 0, 0, 1, 1] + [0] * 11
    want = {c for c in held if low <= c.key_hash < high}
    assert {cs.counter for cs in snapshot.counters} == want
    assert len(store) == len(held)  # export leaves them in place
    assert {cs.state for cs in snapshot.counters} == {(7 * 60 * S, S)}  # level, age 1 s


async def test_drop_of_whole_shards_hashes_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(shards=16)
    held = counters(400)
    await store.hit([Hit(c, 1) for c in held], NOW)

    def no_hashing(_: bytes) -> int:
        raise AssertionError("a shard wholly in the range is cleared, not scanned")

    monkeypatch.setattr(memory, "key_hash", no_hashing)
    width = HASH_SPACE // 16
    dropped = await store.drop(2 * width, 6 * width)
    assert dropped == sum(1 for c in held if 2 * width <= c.key_hash < 6 * width)
    assert len(store) == len(held) - dropped
    monkeypatch.undo()
    cut = await store.drop(width // 2, 2 * width + 1)  # a cut shard filters by hash
    assert cut == sum(1 for c in held if width // 2 <= c.key_hash < 2 * width)


@pytest.mark.parametrize("span", [(-1, 5), (5, 4), (0, HASH_SPACE + 1)])
async def test_a_range_outside_the_hash_space_is_refused(span: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="not a hash range"):
        await MemoryStore().export(*span, NOW)


def snapshot_of(*entries: tuple[Counter, tuple[int, ...]]) -> Snapshot:
    return Snapshot(0, HASH_SPACE, tuple(CounterSnapshot(c, s) for c, s in entries))


async def test_import_keeps_the_eviction_rules_at_the_cap() -> None:
    store = MemoryStore(max_keys=4, shards=1)
    local = counters(4)
    await store.hit([Hit(c, 10) for c in local], NOW)  # every local counter exhausted
    top = LIMIT.capacity * LIMIT.period_ns
    full, partly, in_debt = (Counter("d", (("in", v),), LIMIT) for v in ("f", "p", "x"))
    taken = await store.import_(
        snapshot_of((full, (top, 0)), (partly, (top // 2, 0)), (in_debt, (-top, 0))), NOW
    )
    # The full one carries nothing; the partly used one finds no room (all local ones are
    # exhausted) and is refused as an eviction would drop it; the one in debt is kept past the
    # cap, since refusing it would hand its key quota back.
    assert taken == 1
    assert len(store) == 5
    assert store.counts().refused == 1
    (outcome,) = await store.hit([Hit(in_debt, 1)], NOW)
    assert outcome.allowed is False


async def test_import_makes_room_from_partly_used_counters() -> None:
    store = MemoryStore(max_keys=4, shards=1)
    await store.hit([Hit(c, 1) for c in counters(4)], NOW)
    incoming = Counter("d", (("in", "x"),), LIMIT)
    assert await store.import_(snapshot_of((incoming, (0, 0))), NOW) == 1
    assert store.counts().evictions >= 1
    (outcome,) = await store.hit([Hit(incoming, 1)], NOW)
    assert outcome.allowed is False  # its empty bucket came along


@settings(max_examples=60, deadline=None)
@given(
    theirs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 15)), max_size=12),
    ours=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 15)), max_size=12),
)
async def test_an_import_at_the_cap_never_frees_a_limited_key(
    theirs: list[tuple[int, int]], ours: list[tuple[int, int]]
) -> None:
    """Into a store at its cap: whatever it holds, every key limited on either side stays so."""
    keys = counters(10)
    source, store = MemoryStore(), MemoryStore(max_keys=3, shards=1)
    for side, ops in ((source, theirs), (store, ours)):
        for key, n in ops:
            await side.debit([Hit(keys[key], n)], NOW)
    limited: set[Counter] = set()
    for side in (source, store):
        for item in (await side.export(0, HASH_SPACE, NOW)).counters:
            (o,) = await side.hit([Hit(item.counter, 0)], NOW)
            if o.remaining == 0:
                limited.add(item.counter)
    await store.import_(await source.export(0, HASH_SPACE, NOW), NOW)
    for c in limited:
        assert (await store.hit([Hit(c, 0)], NOW))[0].remaining == 0, c
