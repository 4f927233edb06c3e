"""The stores under test, each behind a zero-argument factory that makes a fresh, empty one.

:class:`CoreStore` is the reference: the pure core's algorithms (``STRATEGIES``) behind the
:class:`~ratekeeper.backends.store.Store` interface, one state per counter, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ratekeeper.backends.cold import ColdRanges, emptied
from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.backends.store import Counter, CounterSnapshot, Hit, Snapshot, Store, StoreStat
from ratekeeper.backends.transfer import aged, restored, stricter
from ratekeeper.core.algorithms import STRATEGIES, State, after_debit
from ratekeeper.core.outcome import Outcome

__all__ = ["CoreStore", "StoreFactory", "memory_store", "redis_store"]

StoreFactory = Callable[[], Store]


class CoreStore:
    """The core behind the store interface: what every backend must answer."""

    def __init__(self) -> None:
        self._states: dict[Counter, State] = {}
        self._cold = ColdRanges()

    def _state(self, counter: Counter, now: int) -> State:
        if counter not in self._states:
            since = self._cold.since(counter.key_hash)
            limit = counter.limit
            self._states[counter] = (
                STRATEGIES[limit.algorithm].new(limit, now)
                if since is None
                else emptied(limit, min(since, now))
            )
        return self._states[counter]

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        return [
            STRATEGIES[h.counter.limit.algorithm].hit(
                self._held_or_new(h.counter, now, h.hits), h.counter.limit, now, h.hits
            )
            for h in hits
        ]

    def _held_or_new(self, counter: Counter, now: int, hits: int) -> State:
        """A check (no hits) of a counter not held answers from a new state, keeping none."""
        if hits or counter in self._states:
            return self._state(counter, now)
        state = self._state(counter, now)
        del self._states[counter]
        return state

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        return [
            after_debit(self._state(h.counter, now), h.counter.limit, now, h.hits) for h in hits
        ]

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        return Snapshot(
            low,
            high,
            tuple(
                CounterSnapshot(c, aged(c.limit, STRATEGIES[c.limit.algorithm].pack(s), now))
                for c, s in self._states.items()
                if low <= c.key_hash < high
            ),
            self._cold.within(low, high, now),
        )

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        incoming = [
            (cs.counter, restored(cs.counter.limit, cs.state, now)) for cs in snapshot.counters
        ]
        for c, state in incoming:
            mine = self._states.get(c)
            self._states[c] = state if mine is None else stricter(c.limit, mine, state, now)
        return len(snapshot.counters)

    async def drop(self, low: int, high: int) -> int:
        doomed = [c for c in self._states if low <= c.key_hash < high]
        for c in doomed:
            del self._states[c]
        return len(doomed)

    async def start_empty(self, low: int, high: int, since: int | None) -> None:
        self._cold.mark(low, high, since)

    def stats(self) -> tuple[StoreStat, ...]:
        return ()

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        self._states.clear()


def memory_store() -> Store:
    return MemoryStore()


_prefixes = itertools.count()


def redis_store(url: str, **settings: Any) -> StoreFactory:
    """Fresh RedisStores on one server, kept apart by key prefix; no expiry jitter."""

    def make() -> Store:
        prefix = f"conformance{next(_prefixes)}:"
        # A generous timeout: these tests check answers, not latency, on a busy machine.
        base = RedisSettings(url, key_prefix=prefix, timeout_s=1.0, expiration_jitter_max_s=0)
        return RedisStore(replace(base, **settings))

    return make
