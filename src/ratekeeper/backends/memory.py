"""Counters in process memory: shards of plain dicts, algorithms from the core.

Thread safety: **single writer, no locks.** Every method must be called from one thread; in an
asyncio process that thread is the event loop, and no method awaits between reading a counter
and writing it back, so a decision is atomic without a lock. A shard is the unit that a later
multi-writer layout (one worker per shard, as gubernator does) would hand to exactly one writer,
and it is the unit that housekeeping visits.

Sharded by slice. A counter's shard is the top bits of its 64-bit key hash
(:attr:`Counter.key_hash <ratekeeper.backends.store.Counter.key_hash>`, the wire contract's
hash, the same in every process), so shard ``i`` of ``n`` holds exactly the hashes in
``[i * 2**64 / n, (i + 1) * 2**64 / n)`` and a hash range maps to a contiguous run of shards:
:meth:`MemoryStore.export` and :meth:`MemoryStore.drop` take the shards inside the range whole
and filter only the (at most two) shards the range cuts. A key's counters under several limits
share a shard, since the hash covers the key and not the limit.

Kept as plain values. A shard maps each counter's ``Counter.identity`` to ``(touched, packed
state)``, tuples of strings and ints only: CPython's cyclic collector stops tracking such
tuples, so a full collection no longer walks every counter held. Objects per counter (a
Counter, an entry, a state) made full collections pause the event loop for a long time with
many keys (``python -m bench.gc_pauses``; figures in docs/benchmarks.md). The price is a state
object unpacked and packed again on each hit.

Blocking: never. Errors: none on the hot path (memory cannot time out); :meth:`MemoryStore.hit`
and :meth:`MemoryStore.debit` only raise for misuse.

Bounded memory. A shard holds at most ``max_keys // shards`` counters. Housekeeping runs inline,
driven by the ``now`` callers pass (no task, no clock read), and visits counters with a clock
hand: the 64 oldest entries in the shard's order are looked at and, when kept, rotated to the end.

* **Idle expiry.** A counter back at full capacity (a full bucket, an empty window) carries no
  information: a new one would behave identically. Once it has also gone ``idle_expiry_ns``
  untouched it is dropped. A counter in debt or over its limit is never full, so it stays until
  it has recovered.
* **Eviction at the cap.** A new key in a full shard first makes the hand drop counters that are
  full (whatever their age). If none is, the hand evicts the *fullest* counters it looked at,
  among those that would still admit a hit. A counter with nothing remaining (over its limit,
  in debt) is never evicted: eviction would hand quota back to exactly the key being limited.
  Evicting a partly used counter hands back at most what it had used, and the fullest loses least.
* **Every key hot.** When the hand finds only exhausted counters, the new key is refused: it is
  reported over its limit (retry in one second) and, for a debit, its hits are not recorded.
  Refusing new keys is the conservative side: limited keys stay limited, and memory stays bounded.
* **Budgets.** Before that can happen, each new counter is charged to its domain and to the
  reporting client that created it (:mod:`ratekeeper.backends.budgets`); a party at its budget
  has its new keys refused the same way, so one party cannot fill the store and lock out the
  others. :meth:`MemoryStore.pressure` says how full the store is and who is at budget.
* **Imports** follow the same rules: a full counter is not taken in (it carries no information),
  a shard at its cap first makes room, and an incoming counter that still admits a hit is
  refused when none can be made. An incoming counter with nothing remaining is taken in even
  past the cap (refusing it would hand its key quota back), so a shard may hold more than its
  share until such counters recover and are swept.
* **Cold ranges** (:meth:`MemoryStore.start_empty`): a counter created in a range marked cold
  starts emptied at the mark's instant, not full (:mod:`ratekeeper.backends.cold`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

from ratekeeper.backends.budgets import Budgets, BudgetSettings, StorePressure
from ratekeeper.backends.cold import ColdRanges, emptied, merged
from ratekeeper.backends.memory_buckets import BucketRef, Key, Value, bucket_ref, debit_held
from ratekeeper.backends.memory_stats import MemoryStoreStats, store_stats
from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot, StoreStat
from ratekeeper.backends.transfer import aged, restored
from ratekeeper.core.algorithms import STRATEGIES, State, after_debit
from ratekeeper.core.keys import HASH_BITS, canonical_bytes, key_hash
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.slices import HASH_SPACE

__all__ = ["BucketRef", "MemoryStore", "MemoryStoreStats"]

#: How many entries the hand looks at per housekeeping step or per eviction.
_HAND_SPAN = 64
#: What a refused new key is told: over its limit, retry in a second.
_REFUSED = Outcome(
    allowed=False, remaining=0, reset_after_ns=NS_PER_SECOND, retry_after_ns=NS_PER_SECOND
)


#: No budget: any one party may hold the whole store.
_UNBUDGETED = BudgetSettings(domain_share=1.0, client_share=1.0, reported_share=1.0)
#: The limit a shard key names (housekeeping reads it back from the key).
_limit_of = functools.lru_cache(maxsize=4096)(Limit.from_identity)


@functools.lru_cache(maxsize=4096)
def _full_remaining(limit: Limit) -> int:
    """``remaining`` of a fresh counter under ``limit``: its value when full."""
    strategy = STRATEGIES[limit.algorithm]
    return strategy.hit(strategy.new(limit, 0), limit, 0, 0).remaining


def _fresh(limit: Limit, state: State, now: int) -> bool:
    """Whether ``state``, brought up to ``now``, is a new counter's: it carries nothing.

    Not ``remaining`` at its maximum: a limit of zero has nothing remaining either way, and
    its debt still changes what a check answers.
    """
    strategy = STRATEGIES[limit.algorithm]
    return bool(strategy.pack(state) == strategy.pack(strategy.new(limit, now)))


class MemoryStore:
    """The :class:`~ratekeeper.backends.store.Store` kept in this process's memory.

    ``max_keys`` caps the counters held; ``idle_expiry_ns`` is how long a full counter must go
    untouched before it is dropped; ``sweep_interval_ns`` is how often (in callers' ``now``) a
    housekeeping step visits the next shard; ``shards`` (a power of two) is how many slices of
    the hash space the counters are kept in; ``budgets`` the shares of ``max_keys`` one domain
    or reporting client may hold (none by default).
    """

    def __init__(
        self,
        *,
        max_keys: int = 1_000_000,
        idle_expiry_ns: int = 60 * NS_PER_SECOND,
        sweep_interval_ns: int = NS_PER_SECOND,
        shards: int = 16,
        budgets: BudgetSettings = _UNBUDGETED,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        if shards < 1 or shards & (shards - 1):
            raise ValueError(f"shards must be a power of two, got {shards}")
        shards = min(shards, 1 << (max_keys.bit_length() - 1))
        self._shards: list[dict[Key, Value]] = [{} for _ in range(shards)]
        self._mask = shards - 1
        #: ``key_hash >> shift`` is the shard: the hash's top ``log2(shards)`` bits.
        self._shift = HASH_BITS - (shards.bit_length() - 1)
        self._shard_cap = max_keys // shards
        self._idle_ns = idle_expiry_ns
        self._sweep_step_ns = max(1, sweep_interval_ns // shards)
        self._next_sweep = 0
        self._sweep_shard = 0
        self._evictions = 0
        self._expirations = 0
        self._refused = 0
        self._budgets = Budgets(max_keys, budgets)
        self._cold = ColdRanges()

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Decide and count each hit; a zero-hit check of an unknown key stores nothing."""
        if now >= self._next_sweep:
            self._sweep(now)
        return [self._one(hit, now, True) for hit in hits]

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Count hits admitted elsewhere, into debt if need be; return each counter's state.

        ``allowed`` in each outcome says whether one more hit would be admitted now.
        """
        if now >= self._next_sweep:
            self._sweep(now)
        return [self._one(hit, now, False) for hit in hits]

    def _one(self, hit: Hit, now: int, take: bool) -> Outcome:
        """Decide (``take``) or debit one hit. This is the RLS hot path: kept inline."""
        counter = hit.counter
        limit = counter.limit
        strategy = STRATEGIES[limit.algorithm]
        shard = self._shards[counter.key_hash >> self._shift]
        key = counter.identity
        value = shard.get(key)
        if value is not None:  # the common case: a known counter
            state = strategy.unpack(*value[1])
            client = value[2]
        elif hit.hits or not take:
            client = hit.client
            state = self._new_state(shard, counter, client, limit, now)
            if state is None:
                return _REFUSED
        else:  # a check of an unknown key: what a new counter would say, nothing stored
            return strategy.hit(self._blank(counter.key_hash, limit, now), limit, now, 0)
        if take:
            outcome = strategy.hit(state, limit, now, hit.hits)
        else:
            outcome = after_debit(state, limit, now, hit.hits, hit.debt)
        shard[key] = (now, strategy.pack(state), client)
        return outcome

    def bucket_ref(self, counter: Counter) -> BucketRef | None:
        """Where ``counter`` lives, for :meth:`debit_buckets`; ``None`` unless it counts a token
        bucket. Valid for the store's life (its shards are never replaced)."""
        return bucket_ref(self._shards[counter.key_hash >> self._shift], counter)

    def debit_buckets(
        self,
        refs: Sequence[BucketRef],
        hits: Sequence[int],
        debt_of: Callable[[int], int],
        client: str,
        now: int,
    ) -> tuple[list[int], dict[int, Outcome]]:
        """:meth:`debit` of ``hits[i]`` hits reported by ``client`` into each token bucket
        ``refs[i]``, ``debt_of(i)`` the hit's ``debt`` (asked only when it can matter),
        synchronously: the same states, a batch report's keys at a time. A bucket held is
        debited in place (:func:`~ratekeeper.backends.memory_buckets.debit_held`: its level
        is returned, :func:`~ratekeeper.backends.memory_buckets.outcome_of` gives the outcome
        :meth:`debit` would); one not held (new, expired, evicted) is created as :meth:`debit`
        creates it (room, budgets, cold ranges), its outcome returned by index."""
        if now >= self._next_sweep:
            self._sweep(now)
        one = self._one

        def new(ref: BucketRef, n: int, debt: int) -> Outcome:
            return one(Hit(ref.counter, n, client, debt=debt), now, False)

        return debit_held(refs, hits, now, debt_of, new)

    def healthy(self) -> bool:
        """Always: memory has no connection to lose."""
        return True

    async def close(self) -> None:
        """Drop every counter."""
        for shard in self._shards:
            shard.clear()
        self._budgets.clear()

    def __len__(self) -> int:
        return sum(len(shard) for shard in self._shards)

    def counts(self) -> MemoryStoreStats:
        """Current counts, typed."""
        return MemoryStoreStats(len(self), self._evictions, self._expirations, self._refused)

    def stats(self) -> tuple[StoreStat, ...]:
        """Current counts, for metrics."""
        return store_stats(self.counts(), self.pressure())

    def pressure(self) -> StorePressure:
        """How full the store is and which parties are at their budget."""
        return self._budgets.pressure(len(self))

    # --- slices ----------------------------------------------------------------------------

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        """Every counter whose key hash is in ``[low, high)``, each instant as an age before
        ``now``, and the range's cold parts; the counters stay. Atomic: nothing awaits, so no
        hit lands half-way."""
        found: list[CounterSnapshot] = []
        for shard, whole in self._shards_in(low, high):
            for (domain, entries, identity), (_, packed, _) in shard.items():
                counter = Counter(domain, entries, _limit_of(identity))
                if whole or low <= counter.key_hash < high:
                    found.append(CounterSnapshot(counter, aged(counter.limit, packed, now)))
        return Snapshot(low, high, tuple(found), self._cold.within(low, high, now))

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        """Merge ``snapshot`` (exported on another clock) in, rebuilt on the clock whose
        instant is ``now``; where a counter is already held, the stricter state stays (or, for
        one created in a cold range, the hits it counted are added: see ``cold.merged``). Returns
        how many of the snapshot's counters are held now (full ones need not be).

        Raises :class:`ValueError`, having taken nothing in, if a counter's state is malformed.
        """
        incoming = [
            (cs.counter, restored(cs.counter.limit, cs.state, now)) for cs in snapshot.counters
        ]
        taken = 0
        for counter, state in incoming:
            limit = counter.limit
            strategy = STRATEGIES[limit.algorithm]
            shard = self._shards[counter.key_hash >> self._shift]
            key = counter.identity
            value = shard.get(key)
            client = ""
            if value is not None:
                since = self._cold.since(counter.key_hash) if self._cold.any else None
                state = merged(limit, strategy.unpack(*value[1]), state, since, now)
                client = value[2]
            else:
                remaining = strategy.hit(state, limit, now, 0).remaining
                cold = self._cold.any and self._cold.since(counter.key_hash) is not None
                if _fresh(limit, state, now) and not cold:
                    continue  # a full counter says what a missing one does (unless cold)
                if len(shard) >= self._shard_cap:
                    self._make_room(shard, now)
                    if len(shard) >= self._shard_cap and remaining > 0:
                        self._refused += 1  # as an eviction would: it hands back what it used
                        continue
                self._budgets.add(counter.domain, client)  # never refused: see the docstring
            shard[key] = (now, strategy.pack(state), client)
            taken += 1
        return taken

    async def start_empty(self, low: int, high: int, since: int | None) -> None:
        """Counters created from now on in ``[low, high)`` start emptied at ``since``
        (``None``: full again); see :mod:`ratekeeper.backends.cold`."""
        if not 0 <= low <= high <= HASH_SPACE:
            raise ValueError(f"not a hash range: [{low}, {high})")
        self._cold.mark(low, high, since)

    async def drop(self, low: int, high: int) -> int:
        """Forget every counter whose key hash is in ``[low, high)``; how many there were."""
        dropped = 0
        for shard, whole in self._shards_in(low, high):
            doomed = [
                key
                for key in shard
                if whole or low <= key_hash(canonical_bytes(key[0], key[1])) < high
            ]
            for key in doomed:
                self._budgets.remove(key[0], shard.pop(key)[2])
            dropped += len(doomed)
        return dropped

    def _shards_in(self, low: int, high: int) -> list[tuple[dict[Key, Value], bool]]:
        """The shards holding hashes in ``[low, high)``, each with whether it lies wholly in."""
        if not 0 <= low <= high <= HASH_SPACE:
            raise ValueError(f"not a hash range: [{low}, {high})")
        if low == high:
            return []
        shift = self._shift
        return [
            (self._shards[i], low <= i << shift and (i + 1) << shift <= high)
            for i in range(low >> shift, ((high - 1) >> shift) + 1)
        ]

    # --- housekeeping ----------------------------------------------------------------------

    def _new_state(
        self, shard: dict[Key, Value], counter: Counter, client: str, limit: Limit, now: int
    ) -> State | None:
        """The state of a new ``counter`` created by ``client`` in ``shard``, or ``None`` when
        it has no room or its domain or client is at budget."""
        if not self._budgets.admits(counter.domain, client):
            return None
        if len(shard) >= self._shard_cap:
            self._make_room(shard, now)
            if len(shard) >= self._shard_cap:
                self._refused += 1
                return None
        self._budgets.add(counter.domain, client)
        return self._blank(counter.key_hash, limit, now)

    def _blank(self, key_hash: int, limit: Limit, now: int) -> State:
        """A new counter's state: full, or emptied when its range went cold (``start_empty``)."""
        since = self._cold.since(key_hash) if self._cold.any else None
        if since is None:
            state: State = STRATEGIES[limit.algorithm].new(limit, now)
            return state
        return emptied(limit, min(since, now))

    def _sweep(self, now: int) -> None:
        """One housekeeping step: the hand passes over the next shard's oldest entries."""
        self._next_sweep = now + self._sweep_step_ns
        self._sweep_shard = (self._sweep_shard + 1) & self._mask
        self._turn_hand(self._shards[self._sweep_shard], now, self._idle_ns, evict=False)

    def _make_room(self, shard: dict[Key, Value], now: int) -> None:
        """Drop full counters, else evict the fullest ones that still admit a hit."""
        self._turn_hand(shard, now, 0, evict=True)

    def _turn_hand(self, shard: dict[Key, Value], now: int, idle_ns: int, *, evict: bool) -> None:
        """Look at the shard's oldest entries: drop those full for ``idle_ns``, rotate the rest
        to the end. With ``evict``, when none was dropped, also evict the fullest of those that
        would still admit a hit (all of them on a tie, so a flood of alike keys evicts in
        batches rather than rescanning for every new key).
        """
        seen = list(itertools.islice(shard.items(), _HAND_SPAN))
        for key, _ in seen:
            del shard[key]
        kept: list[tuple[float, Key, Value]] = []
        fullest = 0.0
        for key, (touched, packed, client) in seen:
            limit = _limit_of(key[2])
            strategy = STRATEGIES[limit.algorithm]
            state = strategy.unpack(*packed)
            # A zero-hit check refills or rolls the state; that is the same state the next hit
            # would see, so the refreshed state is what is kept.
            remaining = strategy.hit(state, limit, now, 0).remaining
            full = _full_remaining(limit)
            if now - touched >= idle_ns and _fresh(limit, state, now):
                self._expirations += 1
                self._budgets.remove(key[0], client)
                continue
            fullness = remaining / full if remaining > 0 else 0.0
            fullest = max(fullest, fullness)
            kept.append((fullness, key, (touched, strategy.pack(state), client)))
        evict = evict and len(kept) == len(seen) and fullest > 0.0
        for fullness, key, value in kept:
            if evict and fullness >= fullest:
                self._evictions += 1
                self._budgets.remove(key[0], value[2])
            else:
                shard[key] = value
