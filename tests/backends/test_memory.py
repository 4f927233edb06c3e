"""The memory store: decisions from the core, idle expiry, the key cap and its eviction rule."""

from __future__ import annotations

import gc

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit

T0 = 1_700_000_000 * NS_PER_SECOND
TEN_PER_S = Limit(10)

TEN_PER_MIN = Limit(10, Unit.MINUTE)


def hit(key: str, n: int = 1, limit: Limit = TEN_PER_S) -> Hit:
    return Hit(Counter("d", (("k", key),), limit), n)


async def test_hits_decide_as_the_token_bucket_and_checks_store_nothing() -> None:
    store = MemoryStore(max_keys=10)
    two = Limit(2)
    outcomes = await store.hit([hit("a", 1, two), hit("a", 1, two), hit("a", 1, two)], T0)
    assert [o.allowed for o in outcomes] == [True, True, False]
    assert [o.remaining for o in outcomes] == [1, 0, 0]
    check = await store.hit([hit("fresh", 0, two)], T0)
    assert check[0].remaining == 2
    assert len(store) == 1


async def test_a_rule_asking_for_a_fixed_window_gets_one() -> None:
    store = MemoryStore()
    window = Limit(2, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)
    first = (await store.hit([hit("w", 1, window)], T0 + 5 * NS_PER_SECOND))[0]
    assert first.reset_after_ns == 35 * NS_PER_SECOND  # T0 + 5 s is 25 s into its minute
    over = await store.hit([hit("w", 2, window)], T0 + 6 * NS_PER_SECOND)
    assert not over[0].allowed


async def test_debit_goes_into_debt_and_reports_whether_one_more_would_pass() -> None:
    store = MemoryStore()
    after = (await store.debit([hit("a", 25)], T0))[0]
    assert (after.allowed, after.remaining) == (False, 0)
    assert after.retry_after_ns == (15 + 1) * NS_PER_SECOND // 10  # repay 15, then one token
    later = (await store.debit([hit("a", 0)], T0 + 2 * NS_PER_SECOND))[0]
    assert (later.allowed, later.remaining) == (True, 5)  # -15 + 2 s × 10/s


async def test_full_idle_counters_expire_and_indebted_ones_stay() -> None:
    store = MemoryStore(max_keys=1000, idle_expiry_ns=NS_PER_SECOND, shards=1)
    await store.hit([hit(str(n)) for n in range(50)], T0)
    await store.debit([hit("debt", 1000, TEN_PER_MIN)], T0)  # debt capped at 2 periods: 2 min
    now = T0
    for _ in range(5):  # each sweep step visits the shard's hand
        now += 2 * NS_PER_SECOND
        await store.hit([], now)
    assert len(store) == 1
    assert store.counts().expirations == 50
    outcome = (await store.hit([hit("debt", 0, TEN_PER_MIN)], now))[0]
    assert outcome.remaining == 0


async def test_at_the_cap_full_counters_go_first_then_the_fullest() -> None:
    store = MemoryStore(max_keys=4, shards=1)
    limit = Limit(10, Unit.HOUR)  # no refill to speak of within the test
    await store.hit([hit("used9", 9, limit), hit("used2", 2, limit), hit("used5", 5, limit)], T0)
    await store.hit([hit("exhausted", 10, limit)], T0)
    await store.hit([hit("new1", 1, limit)], T0)
    # used2 (8 of 10 left) was the fullest that still admits: it is the one evicted.
    assert store.counts().evictions == 1
    assert (await store.hit([hit("exhausted", 0, limit)], T0))[0].remaining == 0
    assert (await store.hit([hit("used9", 0, limit)], T0))[0].remaining == 1


async def test_when_every_counter_is_exhausted_new_keys_are_refused() -> None:
    store = MemoryStore(max_keys=2, shards=1)
    await store.debit([hit("a", 100), hit("b", 100)], T0)
    refused = (await store.hit([hit("c")], T0))[0]
    assert not refused.allowed
    assert store.counts().refused == 1
    assert len(store) == 2
    for key in ("a", "b"):
        assert (await store.hit([hit(key)], T0))[0].allowed is False


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["hit", "debit", "wait"]),
            st.integers(0, 9),  # key
            st.integers(0, 4),  # hits, or tenths of a second to wait
            st.sampled_from([Limit(1), Limit(2), Limit(3, Unit.MINUTE)]),
        ),
        max_size=60,
    )
)
async def test_eviction_never_frees_a_limited_key(
    ops: list[tuple[str, int, int, Limit]],
) -> None:
    """Whatever happens to other keys, a key left with nothing remaining stays limited."""
    store = MemoryStore(max_keys=3, shards=1)
    now = T0
    limited: set[Hit] = set()
    for op, key, n, limit in ops:
        if op == "wait":
            now += n * NS_PER_SECOND // 10
            limited.clear()  # time refills buckets: a limited key may recover legitimately
            continue
        target = hit(str(key), n, limit)
        await (store.hit if op == "hit" else store.debit)([target], now)
        assert len(store) <= 3
        for other in limited - {hit(str(key), 0, limit)}:
            assert (await store.hit([other], now))[0].remaining == 0, other
        check = hit(str(key), 0, limit)
        if (await store.hit([check], now))[0].remaining == 0:
            limited.add(check)


async def test_a_million_keys_stay_within_the_cap_and_bounded_memory() -> None:
    """1 M distinct keys through a 100 k cap: key count, memory, and a key in debt all hold."""
    cap = 100_000
    store = MemoryStore(max_keys=cap)
    process = psutil.Process()
    await store.debit([hit("debtor", 1000, TEN_PER_MIN)], T0)  # capped: 2 min of debt
    now = T0
    rss_at_cap = 0
    for batch in range(1000):
        await store.hit([hit(f"flood-{batch}-{i}") for i in range(1000)], now)
        now += NS_PER_SECOND // 1000  # the whole flood spans one second
        if batch == 199:
            rss_at_cap = process.memory_info().rss
    growth = process.memory_info().rss - rss_at_cap
    assert len(store) <= cap
    assert store.counts().evictions + store.counts().expirations >= 1_000_000 - cap
    # Past the cap, 800 k more keys must not grow memory (allow allocator noise).
    assert growth < 32 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB after the cap was reached"
    debtor = (await store.hit([hit("debtor", 1, TEN_PER_MIN)], now))[0]
    assert not debtor.allowed
    assert debtor.retry_after_ns > 90 * NS_PER_SECOND


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_counters_held_are_not_walked_by_the_garbage_collector(algorithm: Algorithm) -> None:
    """A full collection walks every object the collector tracks: the counters must not be."""
    store = MemoryStore()
    limit = Limit(10, algorithm=algorithm)
    gc.collect()
    before = len(gc.get_objects())
    await store.hit([hit(f"held-{i}", 1, limit) for i in range(10_000)], T0)
    await store.debit([hit(f"owed-{i}", 20, limit) for i in range(10_000)], T0)
    await store.hit([hit(f"held-{i}", 1, limit) for i in range(5_000)], T0 + 1)
    # A collection stops tracking a tuple once what it holds is untracked; a tuple seen before
    # the tuples inside it waits for the next one, as the server's collections come anyway.
    gc.collect()
    gc.collect()
    assert len(store) == 20_000
    assert len(gc.get_objects()) - before < 100
