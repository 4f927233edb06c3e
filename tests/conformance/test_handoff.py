"""Handing a hash range of counters from one store to another (``export``, ``import_``, ``drop``),
against every store that holds its own state; Redis is already shared state and says so."""

from __future__ import annotations

import asyncio
import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.redis import RedisStore
from ratekeeper.backends.redis.store import NOT_PORTABLE_REASON
from ratekeeper.backends.store import Counter, Hit, Snapshot, Store
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.slices import HASH_SPACE
from ratekeeper.errors import NotSupportedError

from .stores import StoreFactory
from .test_store import Call, calls, counter, starts, wide_limits

S = NS_PER_SECOND
T0 = 1_763_700_000 * S
WHOLE = (0, HASH_SPACE)

#: A hash range: the whole space, or any ``[low, high)`` (often cutting a memory shard).
ranges = st.just(WHOLE) | st.lists(
    st.integers(0, HASH_SPACE), min_size=2, max_size=2, unique=True
).map(lambda ends: (min(ends), max(ends)))


async def portable(make: StoreFactory) -> Store:
    """A fresh store of this kind, or skip: Redis holds no state of its own to hand over."""
    store = make()
    if isinstance(store, RedisStore):
        await store.close()
        pytest.skip(f"not supported: {NOT_PORTABLE_REASON}")
    return store


def counters_of(limits: list[Limit], keys: int) -> list[Counter]:
    return [counter(limit, f"{key}.{i}") for key in range(keys) for i, limit in enumerate(limits)]


def clock_offset(limits: list[Limit], windows: int, shift: int) -> int:
    """How far the importer's clock is from the exporter's: anything for buckets; whole periods
    of every window limit when there are any (windows align to each side's epoch by definition,
    so only then do the two sides' windows start together)."""
    periods = [limit.period_s for limit in limits if limit.algorithm is not Algorithm.TOKEN_BUCKET]
    return windows * math.lcm(*periods) * S if periods else shift


async def play(store: Store, counters: list[Counter], now: int, seq: list[Call]) -> list[Outcome]:
    out: list[Outcome] = []
    for gap, hits, reported in seq:
        now += gap
        out += await (store.debit if reported else store.hit)([Hit(c, hits) for c in counters], now)
    return out


def end_of(start: int, seq: list[Call]) -> int:
    return start + sum(gap for gap, _, _ in seq)


@settings(max_examples=40, deadline=None)
@given(
    limits=st.lists(wide_limits, min_size=1, max_size=3),
    keys=st.integers(1, 5),
    start=starts,
    before=st.lists(calls, max_size=10),
    after=st.lists(calls, min_size=1, max_size=10),
    span=ranges,
    windows=st.integers(0, 3),
    shift=st.integers(-(10**18), 10**18),
)
def test_an_imported_range_decides_exactly_as_its_exporter(
    make_store: StoreFactory,
    limits: list[Limit],
    keys: int,
    start: int,
    before: list[Call],
    after: list[Call],
    span: tuple[int, int],
    windows: int,
    shift: int,
) -> None:
    """Export a range after random traffic, import it (through pickle, into an empty store whose
    clock is elsewhere); every later decision on its counters is the exporter's."""
    counters = counters_of(limits, keys)
    low, high = span
    inside = [c for c in counters if low <= c.key_hash < high]
    offset = clock_offset(limits, windows, shift)

    async def run() -> tuple[list[Outcome], list[Outcome]]:
        exporter, importer = await portable(make_store), await portable(make_store)
        try:
            await play(exporter, counters, start, before)
            now = end_of(start, before)
            snapshot = pickle.loads(pickle.dumps(await exporter.export(low, high, now)))
            assert (snapshot.low, snapshot.high) == span
            held = [item.counter for item in snapshot.counters]
            assert len(set(held)) == len(held)
            assert set(held) <= set(inside)
            assert await importer.import_(snapshot, now + offset) == len(held)
            want = await play(exporter, inside, now, after)
            got = await play(importer, inside, now + offset, after)
            return got, want
        finally:
            await exporter.close()
            await importer.close()

    got, want = asyncio.run(run())
    assert got == want


@settings(max_examples=30, deadline=None)
@given(
    limits=st.lists(wide_limits, min_size=1, max_size=2),
    start=starts,
    theirs=st.lists(calls, max_size=8),
    ours=st.lists(calls, max_size=8),
    checks=st.lists(st.integers(0, 10**3) | st.integers(0, 10**11), min_size=1, max_size=6),
)
def test_a_key_held_on_both_sides_keeps_the_stricter_state(
    make_store: StoreFactory,
    limits: list[Limit],
    start: int,
    theirs: list[Call],
    ours: list[Call],
    checks: list[int],
) -> None:
    """After the merge, no later check admits more than either side alone would."""
    counters = counters_of(limits, 2)

    async def run() -> None:
        exporter, merged, alone = [await portable(make_store) for _ in range(3)]
        try:
            await play(exporter, counters, start, theirs)
            await play(merged, counters, start, ours)
            await play(alone, counters, start, ours)
            now = max(end_of(start, theirs), end_of(start, ours))
            await merged.import_(await exporter.export(*WHOLE, now), now)
            for gap in checks:
                now += gap
                batch = [Hit(c, 0) for c in counters]
                sides = [await s.hit(batch, now) for s in (exporter, alone, merged)]
                for a, b, m in zip(*sides, strict=True):
                    assert m.remaining <= min(a.remaining, b.remaining)
        finally:
            for s in (exporter, merged, alone):
                await s.close()

    asyncio.run(run())


@settings(max_examples=30, deadline=None)
@given(span=ranges, keys=st.integers(0, 300))
def test_drop_forgets_exactly_the_range(
    make_store: StoreFactory, span: tuple[int, int], keys: int
) -> None:
    counters = [counter(Limit(3, Unit.MINUTE), str(key)) for key in range(keys)]
    low, high = span

    async def run() -> None:
        store = await portable(make_store)
        try:
            await store.hit([Hit(c, 1) for c in counters], T0)
            dropped = await store.drop(low, high)
            assert dropped == sum(low <= c.key_hash < high for c in counters)
            assert (await store.export(low, high, T0)).counters == ()
            left = {item.counter for item in (await store.export(*WHOLE, T0)).counters}
            assert left == {c for c in counters if not low <= c.key_hash < high}
            # A dropped counter starts afresh; one outside the range kept its hit.
            for c in counters:
                (o,) = await store.hit([Hit(c, 0)], T0)
                assert o.remaining == (3 if low <= c.key_hash < high else 2)
        finally:
            await store.close()

    asyncio.run(run())


async def test_an_empty_range_exports_and_drops_nothing(make_store: StoreFactory) -> None:
    store = await portable(make_store)
    try:
        await store.hit([Hit(counter(Limit(1)), 1)], T0)
        assert await store.export(7, 7, T0) == Snapshot(7, 7, ())
        assert await store.drop(7, 7) == 0
        assert await store.import_(Snapshot(7, 7, ()), T0) == 0
    finally:
        await store.close()


async def test_a_key_in_debt_stays_in_debt_on_the_importer(make_store: StoreFactory) -> None:
    exporter, importer = await portable(make_store), await portable(make_store)
    limit = Limit(10, Unit.SECOND)
    c = counter(limit)
    try:
        (owed,) = await exporter.debit([Hit(c, 30)], T0)  # 20 tokens owed: 2.1 s to the next
        # The importer's clock is an hour ahead; the debt is repaid on its clock all the same.
        elsewhere = T0 + 3600 * S
        await importer.import_(await exporter.export(*WHOLE, T0 + S), elsewhere)
        assert (await importer.hit([Hit(c, 1)], elsewhere))[0].allowed is False
        later = elsewhere + owed.retry_after_ns - S
        assert (await importer.hit([Hit(c, 1)], later - 1))[0].allowed is False
        assert (await importer.hit([Hit(c, 1)], later))[0].allowed is True
    finally:
        await exporter.close()
        await importer.close()


async def test_redis_says_it_is_shared_state(make_store: StoreFactory) -> None:
    store = make_store()
    try:
        if not isinstance(store, RedisStore):
            pytest.skip("only Redis refuses to hand counters over")
        for call in (
            store.export(*WHOLE, T0),
            store.import_(Snapshot(*WHOLE), T0),
            store.drop(*WHOLE),
        ):
            with pytest.raises(NotSupportedError, match="already state shared"):
                await call
    finally:
        await store.close()
