"""Slices moving between stores: export a random set of counters from one store, import them
into another, and every later decision on them is the same; a counter both hold keeps the
stricter state; drop forgets exactly the range. Once per store that moves state (``make_movable``);
Redis skips, since it is already the state every server shares."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot, Store
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.slices import HASH_SPACE

from .stores import CoreStore, StoreFactory
from .test_store import MS, T0, Call, S, calls, counter, starts, wide_limits

FIXED = Algorithm.FIXED_WINDOW

#: A hash range: the whole space, or anything from empty to most of it.
ranges = st.just((0, HASH_SPACE)) | st.lists(
    st.integers(0, HASH_SPACE), min_size=2, max_size=2
).map(lambda pair: (min(pair), max(pair)))
#: Several counters (distinct keys, so distinct hashes) of random limits.
counter_sets = st.lists(wide_limits, min_size=1, max_size=6).map(
    lambda limits: [counter(limit, f"k{i}") for i, limit in enumerate(limits)]
)


async def play(store: Store, counters: list[Counter], now: int, sequence: list[Call]) -> int:
    """Every call of ``sequence`` on every counter; the clock after the last."""
    return await play_some(store, counters, now, [(-1, call) for call in sequence])


#: A history: calls, each on the counters whose bit is set in its mask (so states differ).
Step = tuple[int, Call]
histories = st.lists(st.tuples(st.integers(0, 63), calls), max_size=12)


async def play_some(store: Store, counters: list[Counter], now: int, history: list[Step]) -> int:
    for mask, (gap, hits, reported) in history:
        now += gap
        batch = [Hit(c, hits) for i, c in enumerate(counters) if mask >> i & 1]
        await (store.debit if reported else store.hit)(batch, now)
    return now


@dataclass(frozen=True)
class Case:
    """Counters with a history, a hash range, and the calls that follow."""

    counters: list[Counter]
    start: int
    before: list[Step]
    span: tuple[int, int]
    after: list[Call]

    def moved(self) -> tuple[list[Counter], list[Counter]]:
        """The counters inside the range, and those outside."""
        low, high = self.span
        inside = [c for c in self.counters if low <= c.key_hash < high]
        return inside, [c for c in self.counters if c not in inside]


cases = st.builds(
    Case,
    counters=counter_sets,
    start=starts,
    before=histories,
    span=ranges,
    after=st.lists(calls, min_size=1, max_size=10),
)


async def answers(
    store: Store, counters: list[Counter], now: int, sequence: list[Call]
) -> list[list[Outcome]]:
    out = []
    for gap, hits, reported in sequence:
        now += gap
        batch = [Hit(c, hits) for c in counters]
        out.append(await (store.debit if reported else store.hit)(batch, now))
    return out


@settings(max_examples=40, deadline=None)
@given(case=cases)
def test_imported_counters_decide_as_the_exported_ones(
    make_movable: StoreFactory, case: Case
) -> None:
    (low, high), after = case.span, case.after
    moved, left = case.moved()

    async def run() -> None:
        source, target = make_movable(), make_movable()
        try:
            now = await play_some(source, case.counters, case.start, case.before)
            snapshot = pickle.loads(pickle.dumps(await source.export(low, high, now)))
            assert (snapshot.low, snapshot.high) == (low, high)
            assert {cs.counter for cs in snapshot.counters} <= set(moved)
            await target.import_(snapshot, now)
            assert await answers(target, moved, now, after) == await answers(
                source, moved, now, after
            )
            # Counters outside the range did not come along: fresh in the target.
            assert await answers(target, left, now, after) == await answers(
                CoreStore(), left, now, after
            )
        finally:
            await source.close()
            await target.close()

    asyncio.run(run())


bucket_sets = st.lists(
    st.builds(
        Limit,
        amount=st.integers(0, 40) | st.integers(0, 10**12),
        unit=st.sampled_from(Unit),
        multiplier=st.integers(1, 100),
        burst=st.none() | st.integers(0, 10**13),
    ),
    min_size=1,
    max_size=4,
).map(lambda limits: [counter(limit, f"b{i}") for i, limit in enumerate(limits)])


@settings(max_examples=30, deadline=None)
@given(
    counters=bucket_sets,
    start=starts,
    before=st.lists(calls, max_size=10),
    skew=st.integers(-(10**15), 10**15),
    after=st.lists(calls, min_size=1, max_size=10),
)
def test_token_buckets_need_no_shared_clock(
    make_movable: StoreFactory,
    counters: list[Counter],
    start: int,
    before: list[Call],
    skew: int,
    after: list[Call],
) -> None:
    """The importer's clock is ``skew`` off the exporter's: ages carry the state across."""

    async def run() -> None:
        source, target = make_movable(), make_movable()
        try:
            now = await play(source, counters, start, before)
            await target.import_(await source.export(0, HASH_SPACE, now), now + skew)
            assert await answers(target, counters, now + skew, after) == await answers(
                source, counters, now, after
            )
        finally:
            await source.close()
            await target.close()

    asyncio.run(run())


@pytest.mark.parametrize("skew_ms", [-3, 0, 3, 400])
async def test_a_window_lands_on_the_importers_window_boundary(
    make_movable: StoreFactory, skew_ms: int
) -> None:
    """Clocks off by less than half a period still agree on the window the counts are in."""
    c = counter(Limit(10, Unit.MINUTE, algorithm=FIXED))
    source, target = make_movable(), make_movable()
    now = T0 + 30 * S
    await source.hit([Hit(c, 7)], now)
    await target.import_(await source.export(0, HASH_SPACE, now), now + skew_ms * MS)
    later = now + skew_ms * MS + 10 * S
    assert await target.hit([Hit(c, 1)], later) == await source.hit([Hit(c, 1)], later)
    (outcome,) = await target.hit([Hit(c, 0)], later)
    assert outcome.remaining == 2  # 7 and 1 counted in the same window
    assert outcome.reset_after_ns == T0 + 60 * S - later  # the window ends where it did
    await source.close()
    await target.close()


@settings(max_examples=40, deadline=None)
@given(
    counters=counter_sets,
    start=starts,
    theirs=histories,
    mine=histories,
    probes=st.lists(st.integers(0, 10**3) | st.integers(0, 10**11), min_size=1, max_size=6),
)
def test_a_counter_both_hold_keeps_the_stricter_state(
    make_movable: StoreFactory,
    counters: list[Counter],
    start: int,
    theirs: list[Step],
    mine: list[Step],
    probes: list[int],
) -> None:
    """After the merge no counter admits more, at import time or later, than either side would
    have alone (probed with zero-hit checks, which count nothing)."""

    async def run() -> None:
        exporter, merged, alone = make_movable(), make_movable(), make_movable()
        try:
            t_theirs = await play_some(exporter, counters, start, theirs)
            t_mine = await play_some(merged, counters, start, mine)
            await play_some(alone, counters, start, mine)
            now = max(t_theirs, t_mine)  # neither clock steps back
            await merged.import_(await exporter.export(0, HASH_SPACE, now), now)
            for gap in probes:
                now += gap
                check = [Hit(c, 0) for c in counters]
                got = await merged.hit(check, now)
                a_alone, b_alone = await exporter.hit(check, now), await alone.hit(check, now)
                for m, a, b in zip(got, a_alone, b_alone, strict=True):
                    assert m.remaining <= min(a.remaining, b.remaining)
                    assert m.allowed <= (a.allowed and b.allowed)
        finally:
            for store in (exporter, merged, alone):
                await store.close()

    asyncio.run(run())


_NEVER = Limit(0, Unit.SECOND)
#: Found by hypothesis: the empty range's calls ran the store's sweep at a later time, and the
#: calls that followed went back to an earlier one.
_AFTER_A_SWEEP = Case(
    counters=[
        counter(limit, f"k{i}") for i, limit in enumerate([_NEVER] * 5 + [Limit(1, Unit.SECOND)])
    ],
    start=1_763_700_000_000_000_000,
    before=[(0, (0, 0, False))] * 3 + [(0, (62_500_000, 0, False)), (32, (0, 0, True))],
    span=(0, 0),
    after=[(0, 0, False), (62_500_000, 1, False), (62_500_000, 0, False)],
)


@settings(max_examples=30, deadline=None)
@given(case=cases)
@example(case=_AFTER_A_SWEEP)
def test_drop_forgets_exactly_the_range(make_movable: StoreFactory, case: Case) -> None:
    (low, high), after = case.span, case.after
    gone, stay = case.moved()

    async def run() -> None:
        store, kept = make_movable(), make_movable()
        try:
            now = await play_some(store, case.counters, case.start, case.before)
            await play_some(kept, case.counters, case.start, case.before)
            assert await store.drop(low, high) <= len(gone)
            assert await store.export(low, high, now) == Snapshot(low, high)
            assert await answers(store, gone, now, after) == await answers(
                CoreStore(), gone, now, after
            )
            # The rest is asked from where those calls left the clock: a store's housekeeping
            # runs at the latest time it was given, and neither clock steps back.
            later = now + sum(gap for gap, _, _ in after)
            assert await answers(store, stay, later, after) == await answers(
                kept, stay, later, after
            )
        finally:
            await store.close()
            await kept.close()

    asyncio.run(run())


async def test_a_malformed_snapshot_is_refused_whole(make_movable: StoreFactory) -> None:
    good = counter(Limit(5, Unit.SECOND), "good")
    bad = counter(Limit(5, Unit.SECOND, algorithm=FIXED), "bad")
    store = make_movable()
    snapshot = Snapshot(0, HASH_SPACE, (CounterSnapshot(good, (0, 0)), CounterSnapshot(bad, (1,))))
    with pytest.raises(ValueError, match="fixed_window state is 2 integers"):
        await store.import_(snapshot, T0)
    assert await store.export(0, HASH_SPACE, T0) == Snapshot(0, HASH_SPACE)
    await store.close()
