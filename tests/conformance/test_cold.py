"""Cold ranges (``Store.start_empty``): counters created in a range taken over without its state
start emptied at the mark's instant, counters held are untouched, lifting the mark restores
full starts; every store that keeps its own state answers as the core reference does."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.store import CounterSnapshot, Hit, Snapshot
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE

from .stores import CoreStore, StoreFactory
from .test_store import MS, T0, S, counter
from .test_transfer import Case, answers, cases, play_some


@settings(max_examples=40, deadline=None)
@given(case=cases, lag=st.integers(0, 10**4) | st.integers(0, 10**11))
def test_counters_created_in_a_cold_range_answer_as_the_core(
    make_movable: StoreFactory, case: Case, lag: int
) -> None:
    (low, high), after = case.span, case.after
    half = case.counters[: len(case.counters) // 2]  # held before the mark; the rest are new

    async def run() -> None:
        store, reference = make_movable(), CoreStore()
        try:
            history = [(mask & ((1 << len(half)) - 1), call) for mask, call in case.before]
            now = await play_some(store, case.counters, case.start, history)
            await play_some(reference, case.counters, case.start, history)
            since = now - lag
            await store.start_empty(low, high, since)
            await reference.start_empty(low, high, since)
            assert await answers(store, case.counters, now, after) == await answers(
                reference, case.counters, now, after
            )
        finally:
            await store.close()

    asyncio.run(run())


async def test_a_bucket_created_cold_starts_at_zero_and_refills_from_the_mark(
    make_movable: StoreFactory,
) -> None:
    store = make_movable()
    c = counter(Limit(10, Unit.SECOND))
    await store.start_empty(0, HASH_SPACE, T0)
    (outcome,) = await store.hit([Hit(c, 1)], T0)
    assert not outcome.allowed
    assert outcome.remaining == 0
    (outcome,) = await store.hit([Hit(c, 0)], T0 + 500 * MS)
    assert outcome.remaining == 5  # refilled since the mark, not since creation
    await store.start_empty(0, HASH_SPACE, None)
    other = counter(Limit(10, Unit.SECOND), "fresh")
    (outcome,) = await store.hit([Hit(other, 0)], T0 + 500 * MS)
    assert outcome.remaining == 10  # lifted: new counters are full again
    (outcome,) = await store.hit([Hit(c, 0)], T0 + 500 * MS)
    assert outcome.remaining == 5  # counters held keep their state
    await store.close()


async def test_a_window_created_cold_is_full_until_it_rolls_over(
    make_movable: StoreFactory,
) -> None:
    store = make_movable()
    c = counter(Limit(10, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW))
    await store.start_empty(0, HASH_SPACE, T0 + 10 * S)
    (outcome,) = await store.hit([Hit(c, 1)], T0 + 20 * S)
    assert not outcome.allowed
    (outcome,) = await store.hit([Hit(c, 1)], T0 + 60 * S)
    assert outcome.allowed
    await store.close()


async def test_only_the_marked_range_is_cold(make_movable: StoreFactory) -> None:
    store = make_movable()
    inside, outside = counter(Limit(3), "in"), counter(Limit(3), "out")
    if inside.key_hash > outside.key_hash:
        inside, outside = outside, inside
    await store.start_empty(0, inside.key_hash + 1, T0)
    got = await store.debit([Hit(inside, 0), Hit(outside, 0)], T0)
    assert [o.remaining for o in got] == [0, 3]
    await store.close()


async def test_a_full_counter_imported_into_a_cold_range_stays_full(
    make_movable: StoreFactory,
) -> None:
    """A missing counter says "empty" in a cold range: a full one handed over is kept."""
    source, target = make_movable(), make_movable()
    c = counter(Limit(4))
    await source.hit([Hit(c, 0)], T0)
    await target.start_empty(0, HASH_SPACE, T0)
    full = Snapshot(0, HASH_SPACE, (CounterSnapshot(c, (4 * S, 0)),))
    await target.import_(full, T0)
    (outcome,) = await target.hit([Hit(c, 0)], T0)
    assert outcome.remaining == 4
    await source.close()
    await target.close()


async def test_an_export_says_which_parts_of_its_range_are_cold(
    make_movable: StoreFactory,
) -> None:
    store = make_movable()
    await store.start_empty(100, 200, T0 - 5 * S)
    await store.start_empty(300, 400, T0)
    snapshot = await store.export(150, 350, T0 + S)
    assert snapshot.cold == ((150, 200, 6 * S), (300, 350, S))
    assert (await store.export(0, 100, T0)).cold == ()
    await store.close()
