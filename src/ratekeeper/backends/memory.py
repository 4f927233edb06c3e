"""Counters in process memory: shards of plain dicts by key-hash range, algorithms from the core.

Thread safety: **single writer, no locks.** Every method must be called from one thread; in an
asyncio process that thread is the event loop, and no method awaits between reading a counter
and writing it back, so a decision is atomic without a lock. A shard is the unit that a later
multi-writer layout (one worker per shard, as gubernator does) would hand to exactly one writer,
and it is the unit that housekeeping visits.

Slice-aligned shards. A counter's shard is the *top* bits of its 64-bit key hash
(:attr:`Counter.key_hash <ratekeeper.backends.store.Counter.key_hash>`, stable across processes,
unlike Python's salted ``hash()``), so shard ``i`` holds exactly the hash range
``[i << shift, (i + 1) << shift)`` and a slice ``[low, high)`` is a contiguous run of shards:
:meth:`MemoryStore.export` and :meth:`MemoryStore.drop` take the shards inside the range whole
and filter only the (at most two) shards the range's ends cut. Those are filtered on the key
hash kept in each value: recomputing BLAKE2b per counter there would cost as much as a hit, and
a sorted structure per shard would put an ``O(log n)`` insert on every new key. A key's counters
under several limits share a shard.

Kept as plain values. A shard maps each counter's ``Counter.identity`` to ``(touched, packed
state, key hash)``, tuples of strings and ints only: CPython's cyclic collector stops tracking
such tuples, so a full collection no longer walks every counter held. With objects per counter
(a Counter, an entry, a state) full collections paused the event loop in proportion to the keys
held (``python -m bench.gc_pauses`` measures it). The price is a state object unpacked and
packed again on each hit.

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
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ratekeeper.backends.portable import export_state, import_state, stricter
from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot, StoreStat
from ratekeeper.core.algorithms import STRATEGIES, State, after_debit
from ratekeeper.core.keys import HASH_BITS, Entries
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.slices import HASH_SPACE

__all__ = ["MemoryStore", "MemoryStoreStats"]

#: How many entries the hand looks at per housekeeping step or per eviction.
_HAND_SPAN = 64
#: What a refused new key is told: over its limit, retry in a second.
_REFUSED = Outcome(
    allowed=False, remaining=0, reset_after_ns=NS_PER_SECOND, retry_after_ns=NS_PER_SECOND
)


#: A shard's key: :attr:`Counter.identity <ratekeeper.backends.store.Counter.identity>`.
_Key = tuple[str, Entries, tuple[int, int, int, int | None, str]]
#: A shard's value: ``now`` of the last hit or debit (caller's clock, ns), the packed state, and
#: the counter's key hash (kept so that a range cutting a shard is filtered without rehashing).
_Value = tuple[int, tuple[int, ...], int]
#: The limit a shard key names (housekeeping reads it back from the key).
_limit_of = functools.lru_cache(maxsize=4096)(Limit.from_identity)


@dataclass(frozen=True, slots=True)
class MemoryStoreStats:
    """Counts for metrics; read at scrape time."""

    #: Counters held now.
    keys: int
    #: Partly used counters evicted to make room for new keys.
    evictions: int
    #: Full counters dropped (idle expiry, or to make room).
    expirations: int
    #: New keys refused because every counter the hand saw was exhausted.
    refused: int


@functools.lru_cache(maxsize=4096)
def _full_remaining(limit: Limit) -> int:
    """``remaining`` of a fresh counter under ``limit``: its value when full."""
    strategy = STRATEGIES[limit.algorithm]
    return strategy.hit(strategy.new(limit, 0), limit, 0, 0).remaining


def _is_fresh(packed: tuple[int, ...], limit: Limit, now: int) -> bool:
    """Whether a state brought up to ``now`` is a new counter's: it carries no information.

    Exact, not "``remaining`` at its maximum": under a limit of 0 a bucket in debt has all the
    ``remaining`` a full one has (none), yet answers a check differently, so it is kept (it can
    only come from reported debits, and it counts against the key cap like any exhausted one).
    """
    strategy = STRATEGIES[limit.algorithm]
    return packed == strategy.pack(strategy.new(limit, now))


class MemoryStore:
    """The :class:`~ratekeeper.backends.store.Store` kept in this process's memory.

    ``max_keys`` caps the counters held; ``idle_expiry_ns`` is how long a full counter must go
    untouched before it is dropped; ``sweep_interval_ns`` is how often (in callers' ``now``) a
    housekeeping step visits the next shard.
    """

    def __init__(
        self,
        *,
        max_keys: int = 1_000_000,
        idle_expiry_ns: int = 60 * NS_PER_SECOND,
        sweep_interval_ns: int = NS_PER_SECOND,
        shards: int = 16,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        if shards < 1 or shards & (shards - 1):
            raise ValueError(f"shards must be a power of two, got {shards}")
        shards = min(shards, 1 << (max_keys.bit_length() - 1))
        self._shards: list[dict[_Key, _Value]] = [{} for _ in range(shards)]
        self._mask = shards - 1
        #: A counter's shard is the top bits of its key hash (see the module docstring).
        self._shift = HASH_BITS - (shards.bit_length() - 1)
        self._shard_cap = max_keys // shards
        self._idle_ns = idle_expiry_ns
        self._sweep_step_ns = max(1, sweep_interval_ns // shards)
        self._next_sweep = 0
        self._sweep_shard = 0
        self._evictions = 0
        self._expirations = 0
        self._refused = 0

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Decide and count each hit; a zero-hit check of an unknown key stores nothing."""
        if now >= self._next_sweep:
            self._sweep(now)
        return [self._count(hit, now, True) for hit in hits]

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Count hits admitted elsewhere, into debt if need be; return each counter's state.

        ``allowed`` in each outcome says whether one more hit would be admitted now. A debit
        of zero hits on an unknown key stores nothing, as a check does.
        """
        if now >= self._next_sweep:
            self._sweep(now)
        return [self._count(hit, now, False) for hit in hits]

    def _count(self, hit: Hit, now: int, decide: bool) -> Outcome:
        """One hit: decided (``decide``, the strategy's own hit) or debited (:func:`after_debit`).

        Inline and branch-light: this is the RLS hot path.
        """
        counter = hit.counter
        limit = counter.limit
        strategy = STRATEGIES[limit.algorithm]
        key_hash = counter.key_hash
        shard = self._shards[key_hash >> self._shift]
        key = counter.identity
        value = shard.get(key)
        if value is not None:
            state = strategy.unpack(*value[1])
        elif hit.hits:
            state = self._new_state(shard, limit, now)
            if state is None:
                return _REFUSED
        else:  # a fresh counter's answer; storing it would change nothing
            state = strategy.new(limit, now)
            return (
                strategy.hit(state, limit, now, 0) if decide else after_debit(state, limit, now, 0)
            )
        if decide:
            outcome = strategy.hit(state, limit, now, hit.hits)
        else:
            outcome = after_debit(state, limit, now, hit.hits)
        shard[key] = (now, strategy.pack(state), key_hash)
        return outcome

    def healthy(self) -> bool:
        """Always: memory has no connection to lose."""
        return True

    async def close(self) -> None:
        """Drop every counter."""
        for shard in self._shards:
            shard.clear()

    def __len__(self) -> int:
        return sum(len(shard) for shard in self._shards)

    def counts(self) -> MemoryStoreStats:
        """Current counts, typed."""
        return MemoryStoreStats(len(self), self._evictions, self._expirations, self._refused)

    def stats(self) -> tuple[StoreStat, ...]:
        """Current counts, for metrics."""
        c = self.counts()
        return (
            StoreStat("ratekeeper_store_keys", "Counters held.", "gauge", c.keys),
            StoreStat(
                "ratekeeper_store_evictions",
                "Partly used counters evicted to make room.",
                "counter",
                c.evictions,
            ),
            StoreStat(
                "ratekeeper_store_expirations", "Full counters dropped.", "counter", c.expirations
            ),
            StoreStat(
                "ratekeeper_store_refused_keys",
                "New keys refused at the key cap (every counter exhausted).",
                "counter",
                c.refused,
            ),
        )

    # --- hand-off of a hash range ---------------------------------------------------------

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        """Every counter whose key hash lies in ``[low, high)``, instants as ages before ``now``.

        Visits only the shards of the range; leaves the counters in place (see :meth:`drop`).
        """
        found: list[CounterSnapshot] = []
        for shard, whole in self._covering(low, high):
            for (domain, entries, limit_id), (_, packed, key_hash) in shard.items():
                if whole or low <= key_hash < high:
                    limit = _limit_of(limit_id)
                    state = STRATEGIES[limit.algorithm].unpack(*packed)
                    fields = export_state(state, limit, now)
                    found.append(CounterSnapshot(Counter(domain, entries, limit), fields))
        return Snapshot(low, high, tuple(found))

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        """Merge ``snapshot`` in at ``now``: a counter held already keeps the stricter state.

        At a shard's cap an imported counter makes room as a new key does; one that has nothing
        left to admit is taken in even past the cap (dropping it would hand quota back to a key
        being limited), so the cap is exceeded by at most the snapshot's exhausted counters.
        Raises :class:`ValueError`, having taken nothing in, if a counter lies outside the
        snapshot's range (its exporter hashes keys differently).
        """
        for item in snapshot.counters:
            if not snapshot.low <= item.counter.key_hash < snapshot.high:
                raise ValueError(
                    f"counter {item.counter} lies outside its snapshot's hash range "
                    f"[{snapshot.low:#x}, {snapshot.high:#x})"
                )
        taken = 0
        for item in snapshot.counters:
            counter = item.counter
            limit = counter.limit
            strategy = STRATEGIES[limit.algorithm]
            state = import_state(item.state, limit, now)
            shard = self._shards[counter.key_hash >> self._shift]
            held = shard.get(counter.identity)
            if held is not None:
                state = stricter(strategy.unpack(*held[1]), state, limit, now)
            elif not self._room_for(shard, state, limit, now):
                continue
            shard[counter.identity] = (now, strategy.pack(state), counter.key_hash)
            taken += 1
        return taken

    async def drop(self, low: int, high: int) -> int:
        """Forget every counter whose key hash lies in ``[low, high)``; how many were held."""
        dropped = 0
        for shard, whole in self._covering(low, high):
            if whole:
                dropped += len(shard)
                shard.clear()
                continue
            doomed = [key for key, value in shard.items() if low <= value[2] < high]
            for key in doomed:
                del shard[key]
            dropped += len(doomed)
        return dropped

    def _covering(self, low: int, high: int) -> Iterator[tuple[dict[_Key, _Value], bool]]:
        """The shards holding hashes in ``[low, high)``, each with whether it lies wholly inside
        (else the range cuts it and its counters must be filtered)."""
        if not 0 <= low <= high <= HASH_SPACE:
            raise ValueError(f"not a hash range: [{low:#x}, {high:#x})")
        if low == high:
            return
        shift = self._shift
        for i in range(low >> shift, ((high - 1) >> shift) + 1):
            yield self._shards[i], low <= i << shift and (i + 1) << shift <= high

    def _room_for(self, shard: dict[_Key, _Value], state: State, limit: Limit, now: int) -> bool:
        """Whether an imported counter not held yet goes into ``shard`` (see :meth:`import_`)."""
        if len(shard) < self._shard_cap:
            return True
        strategy = STRATEGIES[limit.algorithm]
        remaining = strategy.hit(state, limit, now, 0).remaining
        if _is_fresh(strategy.pack(state), limit, now):
            return False  # full: a new counter would behave the same, so nothing is lost
        self._make_room(shard, now)
        if len(shard) < self._shard_cap or remaining == 0:
            return True  # an exhausted counter (over its limit, in debt) is kept past the cap
        self._evictions += 1  # partly used: lost as an eviction would lose it
        return False

    # --- housekeeping ----------------------------------------------------------------------

    def _new_state(self, shard: dict[_Key, _Value], limit: Limit, now: int) -> State | None:
        """A full state for a new counter in ``shard``, or ``None`` when it has no room."""
        if len(shard) >= self._shard_cap:
            self._make_room(shard, now)
            if len(shard) >= self._shard_cap:
                self._refused += 1
                return None
        state: State = STRATEGIES[limit.algorithm].new(limit, now)
        return state

    def _sweep(self, now: int) -> None:
        """One housekeeping step: the hand passes over the next shard's oldest entries."""
        self._next_sweep = now + self._sweep_step_ns
        self._sweep_shard = (self._sweep_shard + 1) & self._mask
        self._turn_hand(self._shards[self._sweep_shard], now, self._idle_ns, evict=False)

    def _make_room(self, shard: dict[_Key, _Value], now: int) -> None:
        """Drop full counters, else evict the fullest ones that still admit a hit."""
        self._turn_hand(shard, now, 0, evict=True)

    def _turn_hand(self, shard: dict[_Key, _Value], now: int, idle_ns: int, *, evict: bool) -> None:
        """Look at the shard's oldest entries: drop those full for ``idle_ns``, rotate the rest
        to the end. With ``evict``, when none was dropped, also evict the fullest of those that
        would still admit a hit (all of them on a tie, so a flood of alike keys evicts in
        batches rather than rescanning for every new key).
        """
        seen = list(itertools.islice(shard.items(), _HAND_SPAN))
        for key, _ in seen:
            del shard[key]
        kept: list[tuple[float, _Key, _Value]] = []
        fullest = 0.0
        for key, (touched, packed, key_hash) in seen:
            limit = _limit_of(key[2])
            strategy = STRATEGIES[limit.algorithm]
            state = strategy.unpack(*packed)
            # A zero-hit check refills or rolls the state; that is the same state the next hit
            # would see, so the refreshed state is what is kept.
            remaining = strategy.hit(state, limit, now, 0).remaining
            full = _full_remaining(limit)
            packed = strategy.pack(state)
            if now - touched >= idle_ns and _is_fresh(packed, limit, now):
                self._expirations += 1
                continue
            fullness = remaining / full if remaining > 0 else 0.0
            fullest = max(fullest, fullness)
            kept.append((fullness, key, (touched, packed, key_hash)))
        evict = evict and len(kept) == len(seen) and fullest > 0.0
        for fullness, key, value in kept:
            if evict and fullness >= fullest:
                self._evictions += 1
            else:
                shard[key] = value
