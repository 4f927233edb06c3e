"""The same cases against every store (see ``conftest.make_store``): limits, windows, debt and the
instructions built from the outcomes, plus random sequences compared with the pure core."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.store import Counter, Hit, Store
from ratekeeper.core.instructions import instruct
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

from .stores import CoreStore, StoreFactory

S = NS_PER_SECOND
MS = S // 1000
#: A minute-aligned instant (ns since the epoch).
T0 = 1_763_700_000 * S
FIXED = Algorithm.FIXED_WINDOW
SLIDING = Algorithm.SLIDING_WINDOW


def counter(limit: Limit, value: str = "v") -> Counter:
    return Counter("test", (("key", value),), limit)


async def hit(store: Store, c: Counter, now: int, hits: int = 1) -> Outcome:
    (outcome,) = await store.hit([Hit(c, hits)], now)
    return outcome


async def debit(store: Store, c: Counter, now: int, hits: int) -> Outcome:
    (outcome,) = await store.debit([Hit(c, hits)], now)
    return outcome


async def test_token_bucket_admits_its_capacity_then_says_when_to_retry(store: Store) -> None:
    c = counter(Limit(5, Unit.SECOND))
    seen = [await hit(store, c, T0) for _ in range(6)]
    assert [o.allowed for o in seen] == [True] * 5 + [False]
    assert [o.remaining for o in seen] == [4, 3, 2, 1, 0, 0]
    assert seen[-1] == Outcome(False, 0, reset_after_ns=S, retry_after_ns=200 * MS)
    assert (await hit(store, c, T0 + 200 * MS - 1)).allowed is False
    assert (await hit(store, c, T0 + 200 * MS)).allowed is True


async def test_debt_is_repaid_at_the_refill_rate_before_anything_is_admitted(store: Store) -> None:
    limit = Limit(5, Unit.SECOND)
    c = counter(limit)
    after = await debit(store, c, T0, 15)  # 10 tokens of debt
    assert after == Outcome(False, 0, reset_after_ns=3 * S, retry_after_ns=2200 * MS)
    instruction = instruct(after, limit, client_demand=15.0, total_demand=15.0, valid_for_ns=S)
    assert instruction.reject_for_ns == 2200 * MS  # debt / rate, plus one token
    assert instruction.admit_rate == 5.0
    assert (await hit(store, c, T0 + 2200 * MS - 1)).allowed is False
    assert await hit(store, c, T0 + 2200 * MS) == Outcome(True, 0, S, 200 * MS)


async def test_burst_is_the_capacity_and_refill_stops_there(store: Store) -> None:
    c = counter(Limit(1, Unit.MINUTE, burst=3))
    assert [(await hit(store, c, T0)).allowed for _ in range(4)] == [True] * 3 + [False]
    later = T0 + 10 * 60 * S  # ten minutes refill 10 tokens, capped at 3
    assert [(await hit(store, c, later)).allowed for _ in range(4)] == [True] * 3 + [False]


async def test_fixed_window_counts_as_envoyproxy_ratelimit(store: Store) -> None:
    c = counter(Limit(20, Unit.MINUTE, algorithm=FIXED))
    now = T0 + 30 * S
    seen = [await hit(store, c, now) for _ in range(25)]
    assert [o.allowed for o in seen] == [True] * 20 + [False] * 5
    assert [o.remaining for o in seen[:20]] == list(range(19, -1, -1))
    assert seen[-1] == Outcome(False, 0, reset_after_ns=30 * S, retry_after_ns=30 * S)
    assert await hit(store, c, T0 + 60 * S) == Outcome(True, 19, 60 * S, 0)  # a new window


async def test_fixed_window_batch_goes_over_as_a_whole(store: Store) -> None:
    c = counter(Limit(10, Unit.HOUR, algorithm=FIXED))
    assert (await hit(store, c, T0, 8)).remaining == 2
    assert (await hit(store, c, T0, 3)).allowed is False  # after = 11 > 10, and it counts
    assert (await hit(store, c, T0, 0)) == Outcome(False, 0, *(2 * [3600 * S - T0 % (3600 * S)]))


async def test_sliding_window_weighs_the_previous_window(store: Store) -> None:
    c = counter(Limit(10, Unit.MINUTE, algorithm=SLIDING))
    assert (await hit(store, c, T0, 10)).allowed is True
    assert (await hit(store, c, T0 + 59 * S)).allowed is False
    half = T0 + 90 * S  # half of the previous window still overlaps: 5 used
    assert [(await hit(store, c, half)).allowed for _ in range(6)] == [True] * 5 + [False]


async def test_zero_hits_check_without_counting(store: Store) -> None:
    for algorithm in Algorithm:
        c = counter(Limit(2, Unit.SECOND, algorithm=algorithm), algorithm.value)
        assert (await hit(store, c, T0, 0)).remaining == 2
        assert (await hit(store, c, T0, 0)).remaining == 2
        assert (await hit(store, c, T0, 2)).remaining == 0


async def test_a_limit_of_zero_admits_nothing(store: Store) -> None:
    for algorithm in Algorithm:
        c = counter(Limit(0, Unit.SECOND, algorithm=algorithm), algorithm.value)
        assert (await hit(store, c, T0)).allowed is False


async def test_a_clock_stepping_back_refills_nothing(store: Store) -> None:
    c = counter(Limit(2, Unit.SECOND))
    await hit(store, c, T0, 2)
    assert (await hit(store, c, T0 - 10 * S)).allowed is False
    assert (await hit(store, c, T0 + 500 * MS)).allowed is True


async def test_one_call_answers_each_counter_in_order(store: Store) -> None:
    counters = [
        counter(Limit(3, Unit.SECOND), "a"),
        counter(Limit(3, Unit.SECOND, algorithm=FIXED), "a"),
        counter(Limit(3, Unit.MINUTE, algorithm=SLIDING), "a"),
        counter(Limit(1, Unit.DAY), "b"),
    ]
    hits = [Hit(c, n) for c, n in zip(counters, [1, 2, 3, 2], strict=True)]
    first = await store.hit(hits, T0)
    assert [(o.allowed, o.remaining) for o in first] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 1),
    ]
    reported = await store.debit(hits, T0)
    assert [o.remaining for o in reported] == [1, 0, 0, 0]


# --- random sequences against the core ---------------------------------------------------------

#: Limits from tiny to huge: amounts and bursts past 2^32, periods up to 100 years, so that every
#: intermediate of the token bucket (tokens x period_ns, elapsed x amount) passes 2^53.
wide_limits = st.builds(
    Limit,
    amount=st.integers(0, 40) | st.integers(0, 10**12),
    unit=st.sampled_from(Unit),
    multiplier=st.integers(1, 3) | st.integers(1, 100),
    burst=st.none() | st.integers(0, 80) | st.integers(0, 10**13),
    algorithm=st.sampled_from(Algorithm),
)
#: One call: (gap to the previous call in ns, hits, reported rather than decided).
Call = tuple[int, int, bool]
calls = st.tuples(
    st.integers(0, 10**3) | st.integers(0, 10**10) | st.integers(0, 10**17),
    st.integers(0, 4) | st.integers(0, 10**9),
    st.booleans(),
)
starts = st.integers(T0, T0 + 50 * 365 * 86_400 * S)


async def _play(
    store: Store, counters: list[Counter], start: int, sequence: list[Call]
) -> list[list[Outcome]]:
    now, out = start, []
    for gap, hits, reported in sequence:
        now += gap
        batch = [Hit(c, hits) for c in counters]
        out.append(await (store.debit if reported else store.hit)(batch, now))
    return out


def _compare(make: StoreFactory, counters: list[Counter], start: int, sequence: list[Call]) -> None:
    async def both() -> tuple[list[list[Outcome]], list[list[Outcome]]]:
        store = make()
        try:
            got = await _play(store, counters, start, sequence)
        finally:
            await store.close()
        return got, await _play(CoreStore(), counters, start, sequence)

    got, want = asyncio.run(both())
    assert got == want
    # What the report service tells clients follows from the outcomes alone.
    for outcomes in got:
        for c, outcome in zip(counters, outcomes, strict=True):
            instruction = instruct(outcome, c.limit, 10.0, 20.0, S)
            assert instruction.reject_for_ns >= 0
            assert (instruction.reject_for_ns == 0) is (outcome.remaining > 0)


@settings(max_examples=40, deadline=None)
@given(
    limits=st.lists(wide_limits, min_size=1, max_size=3),
    start=starts,
    sequence=st.lists(calls, max_size=25),
)
def test_random_sequences_match_the_core(
    make_store: StoreFactory, limits: list[Limit], start: int, sequence: list[Call]
) -> None:
    counters = [counter(limit, str(i)) for i, limit in enumerate(limits)]
    _compare(make_store, counters, start, sequence)


#: Sequences that keep a bucket away from its cap (a deep debt first, then short gaps), where
#: refills are exact only if every product is: elapsed x amount passes 2^64 here.
deep_limits = st.builds(
    Limit,
    amount=st.integers(10**6, 10**12),
    unit=st.sampled_from(Unit),
    multiplier=st.integers(1, 100),
    burst=st.none() | st.integers(0, 10**13),
    algorithm=st.sampled_from(Algorithm),
)
deep_calls = st.tuples(
    st.integers(1, 10**12), st.integers(0, 3) | st.integers(0, 10**6), st.booleans()
)


@settings(max_examples=30, deadline=None)
@given(
    limit=deep_limits,
    start=starts,
    debt=st.integers(10**6, 10**12),
    sequence=st.lists(deep_calls, min_size=1, max_size=15),
)
def test_deep_debt_is_repaid_exactly(
    make_store: StoreFactory, limit: Limit, start: int, debt: int, sequence: list[Call]
) -> None:
    _compare(make_store, [counter(limit)], start, [(0, debt, True), *sequence])


async def test_refill_products_past_2_to_the_64_are_exact(store: Store) -> None:
    limit = Limit(10**12 - 1, Unit.YEAR, multiplier=100)
    c = counter(limit)
    now = T0 + 987_654_321
    reference = CoreStore()
    for gap, hits, reported in [(0, 10**9, True), (12_345_678_901, 1, False), (7, 0, True)]:
        now += gap
        call = store.debit if reported else store.hit
        want = await (reference.debit if reported else reference.hit)([Hit(c, hits)], now)
        assert await call([Hit(c, hits)], now) == want
