"""A held bucket debited in place ends as ``after_debit`` leaves it, with the same outcome."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.memory_buckets import outcome_of
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.algorithms import after_debit
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE
from ratekeeper.core.token_bucket import TokenBucket

NOW = 1_700_000_000 * 10**9

limits = st.builds(
    Limit,
    amount=st.integers(0, 5) | st.integers(0, 1000),
    unit=st.sampled_from([Unit.SECOND, Unit.MINUTE]),
    multiplier=st.integers(1, 3),
    burst=st.none() | st.integers(0, 20),
)


@settings(max_examples=300, deadline=None)
@given(
    limit=limits,
    level=st.integers(-(10**13), 10**13),
    age=st.integers(-(10**9), 10**11),
    hits=st.integers(0, 2000),
    debt=st.integers(0, 5000),
)
def test_a_held_bucket_is_debited_as_the_core_debits_it(
    limit: Limit, level: int, age: int, hits: int, debt: int
) -> None:
    counter = Counter("d", (("k", "v"),), limit)
    bucket = TokenBucket(min(level, limit.capacity * limit.period_ns), NOW - age)
    store = MemoryStore()
    ref = store.bucket_ref(counter)
    assert ref is not None
    ref.shard[ref.key] = (NOW - age, (bucket.level, bucket.updated_at), "c")
    [level], created = store.debit_buckets([ref], [hits], lambda _: debt, "c", NOW)
    assert not created
    assert outcome_of(ref, level) == after_debit(bucket, limit, NOW, hits, debt)
    assert level == bucket.level
    assert ref.shard[ref.key] == (NOW, (bucket.level, bucket.updated_at), "c")


def test_a_bucket_not_held_is_created_as_debit_creates_it() -> None:
    counter = Counter("d", (("k", "v"),), Limit(5, Unit.SECOND))
    twin, store = MemoryStore(), MemoryStore()
    ref = store.bucket_ref(counter)
    assert ref is not None
    _, created = store.debit_buckets([ref], [7], lambda _: 0, "c", NOW)
    assert [created[0]] == asyncio.run(twin.debit([Hit(counter, 7, "c")], NOW))
    exported = asyncio.run(store.export(0, HASH_SPACE, NOW))
    assert exported == asyncio.run(twin.export(0, HASH_SPACE, NOW))
    assert store.pressure() == twin.pressure()


def test_only_token_buckets_have_a_ref() -> None:
    window = Counter("d", (("k", "v"),), Limit(5, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW))
    assert MemoryStore().bucket_ref(window) is None
