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

__all__ = ["BucketRef", "Key", "Value", "bucket_ref", "debit_held"]

#: A shard's key: :attr:`Counter.identity <ratekeeper.backends.store.Counter.identity>`.
Key = tuple[str, Entries, tuple[int, int, int, int | None, str]]
#: A shard's value: ``now`` of the last hit or debit (caller's clock, ns), the packed state, and
#: the reporting client the counter was created for ("" if none), which its budget is charged.
Value = tuple[int, tuple[int, ...], str]

_new_outcome = tuple.__new__  # an Outcome without its NamedTuple's Python-level __new__
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
    #: A full bucket's level (``capacity × period_ns``), and the debt horizon in tokens.
    top: int
    horizon: int
    counter: Counter


def bucket_ref(shard: dict[Key, Value], counter: Counter) -> BucketRef | None:
    """``counter``'s place in ``shard``; ``None`` unless it counts a token bucket."""
    limit = counter.limit
    if limit.algorithm is not _TOKEN_BUCKET:
        return None
    period, amount, capacity = limit.period_ns, limit.amount, limit.capacity
    horizon = DEBT_HORIZON_PERIODS * amount
    return BucketRef(shard, counter.identity, period, amount, capacity, capacity * period, horizon,
                     counter)  # fmt: skip


def debit_held(
    refs: Sequence[BucketRef],
    hits: Sequence[int],
    debts: Sequence[int],
    now: int,
    new: Callable[[BucketRef, int, int], Outcome],
) -> list[Outcome]:
    """Debit ``hits[i]`` into bucket ``refs[i]`` with ``debts[i]`` tokens of debt allowed
    (``token_bucket.debit``), in order; each bucket's outcome after, ``allowed`` if one more hit
    would be admitted (``after_debit``). A bucket not held is left to ``new(ref, hits, debt)``."""
    out: list[Outcome] = []
    add, new_outcome = out.append, _new_outcome
    for ref, n, debt in zip(refs, hits, debts, strict=True):
        shard, key, period, amount, capacity, top, horizon, _ = ref
        value = shard.get(key)
        if value is None:
            add(new(ref, n, debt))
            continue
        level, updated = value[1]
        if now > updated:  # refill
            if level < top:
                level = min(top, level + (now - updated) * amount)
            updated = now
        floor = -(horizon if horizon > debt else debt) * period  # debt_floor
        level -= n * period
        if level < floor:
            level = floor
        shard[key] = (now, (level, updated), value[2])
        # outcome() of the zero-hit take after the debit
        to_full = top - level
        reset = -(-to_full // amount) if to_full > 0 and amount else 0
        if level >= period:
            add(new_outcome(Outcome, (True, level // period, reset, 0)))
        else:  # ns_until one token
            retry = -(-(period - level) // amount) if amount and capacity else -1
            add(new_outcome(Outcome, (False, 0, reset, retry)))
    return out
