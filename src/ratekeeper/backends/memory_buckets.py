"""The memory store's token buckets debited in place, a batch report's keys at a time (issue 15).

A report debits one bucket per key, report after report; through :meth:`MemoryStore.debit
<ratekeeper.backends.memory.MemoryStore.debit>` each costs a :class:`Hit`, a state object
unpacked, refilled, debited, checked and packed again, and an :class:`Outcome`: most of a
report's cost per key. A caller that debits the same buckets every report keeps a
:class:`BucketRef` per bucket (its shard, its key there, the numbers of its limit), and
:func:`debit_held` applies :func:`~ratekeeper.core.algorithms.after_debit` over the packed state
directly: the same state written back and the same outcome, checked against the core in
``tests/backends/test_memory_buckets.py``. The arithmetic is the core's
(:mod:`ratekeeper.core.token_bucket`), written out; change one, change both.

Single writer, as the store: called from its event loop only, nothing awaits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ratekeeper.backends.store import Counter
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import Algorithm
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.token_bucket import DEBT_HORIZON_PERIODS

__all__ = ["BucketRef", "Key", "Value", "bucket_ref", "debit_held", "outcome_of"]

#: A shard's key: :attr:`Counter.identity <ratekeeper.backends.store.Counter.identity>`.
Key = tuple[str, Entries, tuple[int, int, int, int | None, str]]
#: A shard's value: ``now`` of the last hit or debit (caller's clock, ns), the packed state, and
#: the reporting client the counter was created for ("" if none), which its budget is charged.
Value = tuple[int, tuple[int, ...], str]

_TOKEN_BUCKET = Algorithm.TOKEN_BUCKET


class BucketRef(NamedTuple):
    """Where one token-bucket counter lives in a memory store, and the numbers of its limit
    that a debit reads."""

    #: The shard holding the counter, and its key there (``Counter.identity``).
    shard: dict[Key, Value]
    key: Key
    #: ``limit.period_ns``, ``limit.amount`` and ``limit.capacity``.
    period_ns: int
    amount: int
    capacity: int
    #: A full bucket's level (``capacity × period_ns``), the debt horizon in tokens and the
    #: lowest level it allows (``token_bucket.debt_floor`` with no further debt).
    top: int
    horizon: int
    floor: int
    counter: Counter


def bucket_ref(shard: dict[Key, Value], counter: Counter) -> BucketRef | None:
    """``counter``'s place in ``shard``; ``None`` unless it counts a token bucket."""
    limit = counter.limit
    if limit.algorithm is not _TOKEN_BUCKET:
        return None
    period, amount, capacity = limit.period_ns, limit.amount, limit.capacity
    horizon = DEBT_HORIZON_PERIODS * amount
    top, floor = capacity * period, -horizon * period
    return BucketRef(shard, counter.identity, period, amount, capacity, top, horizon, floor,
                     counter)  # fmt: skip


def debit_held(
    refs: Sequence[BucketRef],
    hits: Sequence[int],
    now: int,
    debt_of: Callable[[int], int],
    new: Callable[[BucketRef, int, int], Outcome],
) -> tuple[list[int], dict[int, Outcome]]:
    """Debit ``hits[i]`` into bucket ``refs[i]`` (``token_bucket.debit``), in order, with
    ``debt_of(i)`` tokens of debt allowed, asked only of a debit that reaches past the debt
    horizon (it cannot change any other). A bucket not held is left to ``new(ref, hits,
    debt)``. Returns each held bucket's level after (:func:`outcome_of` describes it, as
    ``after_debit`` would: a level, not an :class:`Outcome`, since most callers need only its
    whole tokens) and, by index, the outcome of each bucket not held (its level is 0 there)."""
    levels: list[int] = []
    created: dict[int, Outcome] = {}
    add = levels.append
    for i in range(len(refs)):
        ref, n = refs[i], hits[i]
        shard, key, period, amount, _, top, horizon, floor, _ = ref
        value = shard.get(key)
        if value is None:
            created[i] = new(ref, n, debt_of(i))
            add(0)
            continue
        level, updated = value[1]
        if now > updated:  # refill
            if level < top:
                level += (now - updated) * amount
                if level > top:
                    level = top
            updated = now
        level -= n * period
        if level < floor:  # past the horizon: the debt allowed may reach further
            debt = debt_of(i)
            if debt > horizon:
                floor = -debt * period
            if level < floor:
                level = floor
        shard[key] = (now, (level, updated), value[2])
        add(level)
    return levels, created


def outcome_of(ref: BucketRef, level: int) -> Outcome:
    """The outcome of a zero-hit take from bucket ``ref`` at ``level`` (``token_bucket.outcome``
    with ``allowed`` if one more hit would be admitted, as ``after_debit`` answers)."""
    period, amount = ref.period_ns, ref.amount
    to_full = ref.top - level
    reset = -(-to_full // amount) if to_full > 0 and amount else 0
    if level >= period:
        return Outcome(True, level // period, reset, 0)
    retry = -(-(period - level) // amount) if amount and ref.capacity else -1  # ns_until 1
    return Outcome(False, 0, reset, retry)
