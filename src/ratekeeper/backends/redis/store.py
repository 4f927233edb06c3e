"""The legacy corner's store: counters in Redis, one round trip per call and Redis.

* Fixed windows are envoyproxy/ratelimit's, command for command: per call and per Redis one
  pipeline of ``INCRBY key hits`` + ``EXPIRE key period+jitter`` per counter, keys in its format
  (:mod:`.keys`), OVER_LIMIT when the ``INCRBY`` result exceeds the amount; optionally a local
  cache of keys over their limit, a second Redis for per-second limits and the
  stop-incrementing-when-over mode (:class:`.RedisSettings`).
* Token buckets and sliding windows (the migration path) go through ``batch.lua``, which applies
  every such counter of a call in one ``EVALSHA`` appended to the same pipeline.

* Every key it writes expires; :meth:`RedisStore.pressure` says how full Redis is
  (:mod:`.pressure` says why that, and no key budget, is this store's defence).

* Slices move without state: every server sharing this Redis already reads and writes the same
  counters, so :meth:`RedisStore.export`, :meth:`RedisStore.import_` and :meth:`RedisStore.drop`
  raise :class:`~ratekeeper.backends.store.TransferUnsupported` (and the conformance cases of
  slice transfer skip Redis with that reason).

Every outcome is computed by :mod:`ratekeeper.core` from the state Redis held (see
:mod:`.batch`); ``now`` always comes from the caller, never from Redis ``TIME``, so that this
store answers exactly as the core does and can be tested against it. Only key expiry follows
Redis's own clock.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.client import Pipeline

from ratekeeper.backends.budgets import StorePressure
from ratekeeper.backends.redis import batch, keys
from ratekeeper.backends.redis.connection import RedisConnection
from ratekeeper.backends.redis.local_cache import OverLimitCache
from ratekeeper.backends.redis.pressure import MemoryPressure
from ratekeeper.backends.redis.settings import RedisSettings
from ratekeeper.backends.store import Hit, Snapshot, StoreStat, TransferUnsupported
from ratekeeper.core import fixed_window
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

__all__ = ["RedisStore"]

#: Why a Redis store moves no state with a slice.
_SHARED = (
    "the redis store does not export, import or drop counters: Redis is already the state "
    "every server shares, so a slice moves between servers without moving its counters"
)


@dataclass(slots=True)
class _Batch:
    """One call's commands for one Redis: (index into the call's hits, key) pairs."""

    fixed: list[tuple[int, str]] = field(default_factory=list)
    scripted: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RedisStoreStats:
    """Counts for metrics; read at scrape time."""

    #: Calls that failed (Redis down, timed out, or answering with an error).
    backend_errors: int
    #: Hits answered OVER_LIMIT from the local cache without asking Redis.
    over_limit_with_local_cache: int


class RedisStore:
    """:class:`~ratekeeper.backends.store.Store` in Redis; see the module docstring.

    :meth:`stats` gives the server its error count and the reference's
    ``over_limit_with_local_cache`` count at scrape time.
    """

    def __init__(
        self,
        settings: RedisSettings | None = None,
    ) -> None:
        self.settings = settings = settings or RedisSettings()
        #: Hits answered OVER_LIMIT from the local cache, without Redis.
        self.local_cache_hits_total = 0
        self._main = RedisConnection(settings.url, settings)
        self._per_second = (
            RedisConnection(settings.per_second_url, settings) if settings.per_second_url else None
        )
        self._cache = OverLimitCache(settings.local_cache_size)
        self._jitter = random.Random()
        samplers = [functools.partial(r.client.info, "memory") for r in self._redises()]
        self._memory = MemoryPressure(samplers, settings.pressure_ratio, settings.timeout_s)

    @property
    def errors_total(self) -> int:
        """Calls that failed (Redis down, timed out, or answering with an error)."""
        return sum(r.errors for r in self._redises())

    def counts(self) -> RedisStoreStats:
        """Current counts, typed."""
        return RedisStoreStats(self.errors_total, self.local_cache_hits_total)

    def pressure(self) -> StorePressure:
        """How full the fullest Redis's memory is (sampled in the background, at most once a
        second): ``/healthcheck`` answers DEGRADED past ``pressure_ratio``."""
        return self._memory.pressure()

    def stats(self) -> tuple[StoreStat, ...]:
        """Current counts, for metrics."""
        return (
            StoreStat(
                "ratekeeper_store_pressure",
                "Redis memory used over maxmemory (or the host's memory when unset; 1: full).",
                "gauge",
                self.pressure().fill,
            ),
            StoreStat(
                "ratekeeper_store_backend_errors",
                "Calls the backend failed (down, timed out, or answering with an error).",
                "counter",
                self.errors_total,
            ),
            StoreStat(
                "ratekeeper_over_limit_with_local_cache",
                "Hits answered over the limit from the local cache of keys already over, "
                "without Redis.",
                "counter",
                self.local_cache_hits_total,
            ),
        )

    # Slices: not supported. Every server sharing this Redis already reads and writes the same
    # counters, so the server that takes a slice over finds its state there; nothing to move.

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        """Raises :class:`TransferUnsupported`: Redis is already the shared state."""
        raise TransferUnsupported(_SHARED)

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        """Raises :class:`TransferUnsupported`: Redis is already the shared state."""
        raise TransferUnsupported(_SHARED)

    async def drop(self, low: int, high: int) -> int:
        """Raises :class:`TransferUnsupported`: Redis is already the shared state."""
        raise TransferUnsupported(_SHARED)

    async def start_empty(self, low: int, high: int, since: int | None) -> None:
        """Raises :class:`TransferUnsupported`: a server's crash loses no Redis counter."""
        raise TransferUnsupported(_SHARED)

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Decide and count each hit (Envoy RLS); one round trip per Redis involved."""
        return await self._apply(hits, now, take=True)

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Count hits admitted elsewhere (batch reports) in one round trip per Redis."""
        return await self._apply(hits, now, take=False)

    def healthy(self) -> bool:
        """Whether every Redis answered its last round trip."""
        return all(r.health.up for r in self._redises())

    async def connect(self) -> None:
        """Ping every Redis once (so that :meth:`healthy` turns true before the first call);
        raises :class:`BackendError` within the timeout if one does not answer."""
        deadline = asyncio.get_running_loop().time() + self.settings.timeout_s
        for r in self._redises():
            await r.execute(lambda pipe: pipe.ping(), deadline)
        await self._memory.sample()

    async def close(self) -> None:
        """Stop reconnecting and release every connection."""
        await self._memory.close()
        for r in self._redises():
            await r.close()

    def _redises(self) -> list[RedisConnection]:
        return [self._main] if self._per_second is None else [self._main, self._per_second]

    def _route(self, hit: Hit) -> RedisConnection:
        if self._per_second is not None and hit.counter.limit.unit is Unit.SECOND:
            return self._per_second
        return self._main

    async def _apply(self, hits: Sequence[Hit], now: int, *, take: bool) -> list[Outcome]:
        deadline = asyncio.get_running_loop().time() + self.settings.timeout_s
        outcomes: list[Outcome | None] = [None] * len(hits)
        batches: dict[RedisConnection, _Batch] = {}
        prefix = self.settings.key_prefix
        for i, hit in enumerate(hits):
            batch_ = batches.setdefault(self._route(hit), _Batch())
            if hit.counter.limit.algorithm is not Algorithm.FIXED_WINDOW:
                batch_.scripted.append((i, keys.state_key(prefix, hit.counter)))
                continue
            key = keys.fixed_window_key(prefix, hit.counter, now)
            if take and self._cache.over(key, now):
                outcomes[i] = self._from_local_cache(hit, now)
            else:
                batch_.fixed.append((i, key))
        if take and self.settings.stop_increment_when_over:
            local_over = any(outcome is not None for outcome in outcomes)  # the local cache's
            await self._stop_if_over(batches, hits, now, outcomes, deadline, local_over)
        await self._each(
            self._run(r, b, hits, now, take, outcomes, deadline) for r, b in batches.items()
        )
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(hits), "every hit is answered from Redis or the local cache"
        return done

    def _from_local_cache(self, hit: Hit, now: int) -> Outcome:
        self.local_cache_hits_total += 1
        limit = hit.counter.limit
        # The cache knows only that the count went past the amount: the least such count.
        known = fixed_window.FixedWindow(fixed_window.window_start(limit, now), limit.amount + 1)
        return batch.replay(known, limit, now, hit.hits, take=True)

    async def _stop_if_over(
        self,
        batches: dict[RedisConnection, _Batch],
        hits: Sequence[Hit],
        now: int,
        outcomes: list[Outcome | None],
        deadline: float,
        local_over: bool,
    ) -> None:
        """The reference's stop-incrementing mode (fixed_cache_impl.go): if a key is over in
        the local cache, no other is counted; else every count is read first and, if some
        would go over, only those are counted (and answered over), the others only checked."""
        counts: dict[int, tuple[str, int]] = {}

        async def read(r: RedisConnection, b: _Batch) -> None:
            replies = await r.execute(lambda p: [p.get(key) for _, key in b.fixed], deadline)
            for (i, key), reply in zip(b.fixed, replies, strict=True):
                counts[i] = (key, int(reply or 0))

        await self._each(read(r, b) for r, b in batches.items() if b.fixed)
        over = set() if local_over else {i for i, (_, n) in counts.items() if _over(hits[i], n)}
        if not over and not local_over:
            return
        for i, (key, n) in counts.items():
            if i in over:
                continue  # the key that goes over is still counted, as the reference does
            limit = hits[i].counter.limit
            window = fixed_window.FixedWindow(fixed_window.window_start(limit, now), n)
            outcomes[i] = fixed_window.count(window, limit, now, 0)
            self._remember_if_over(key, limit, now, outcomes[i])
        for b in batches.values():
            b.fixed[:] = [(i, key) for i, key in b.fixed if i in over]

    async def _run(
        self,
        r: RedisConnection,
        b: _Batch,
        hits: Sequence[Hit],
        now: int,
        take: bool,
        outcomes: list[Outcome | None],
        deadline: float,
    ) -> None:
        """One pipeline: ``INCRBY``+``EXPIRE`` per fixed window, one ``EVALSHA`` for the rest."""
        if not b.fixed and not b.scripted:
            return
        script = [key for _, key in b.scripted] + batch.header(now, take)
        for i, _ in b.scripted:
            script += batch.arguments(hits[i].counter.limit, now, hits[i].hits, hits[i].debt)

        def build(pipe: Pipeline) -> None:
            for i, key in b.fixed:
                pipe.incrby(key, hits[i].hits)
                pipe.expire(key, self._expiry_s(hits[i]))

        replies = await r.execute(build, deadline, (len(b.scripted), script))
        for n, (i, key) in enumerate(b.fixed):
            outcomes[i] = self._fixed_outcome(hits[i], key, int(replies[2 * n]), now, take)
        if b.scripted:
            for (i, _), reply in zip(b.scripted, replies[-1], strict=True):
                limit = hits[i].counter.limit
                state = batch.stored_state(limit, reply)
                outcomes[i] = batch.replay(state, limit, now, hits[i].hits, take, hits[i].debt)

    def _expiry_s(self, hit: Hit) -> int:
        jitter = self.settings.expiration_jitter_max_s
        return hit.counter.limit.period_s + (self._jitter.randrange(jitter) if jitter else 0)

    def _fixed_outcome(self, hit: Hit, key: str, after: int, now: int, take: bool) -> Outcome:
        limit = hit.counter.limit
        start = fixed_window.window_start(limit, now)
        before = fixed_window.FixedWindow(start, after - hit.hits)
        outcome = batch.replay(before, limit, now, hit.hits, take)
        if take:
            self._remember_if_over(key, limit, now, outcome)
        return outcome

    def _remember_if_over(self, key: str, limit: Limit, now: int, outcome: Outcome | None) -> None:
        """Put a key found over its limit in the local cache, until its window ends."""
        if outcome is not None and not outcome.allowed:
            end = fixed_window.window_start(limit, now) + limit.period_s
            self._cache.add(key, end * NS_PER_SECOND, now)

    async def _each(self, calls: Iterable[Coroutine[Any, Any, None]]) -> None:
        """Await ``calls`` concurrently (one per Redis); the first failure cancels the rest."""
        try:
            async with asyncio.TaskGroup() as group:
                for call in calls:
                    group.create_task(call)
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None


def _over(hit: Hit, count: int) -> bool:
    """Whether ``hit`` takes a fixed window at ``count`` past its limit."""
    return count + hit.hits > hit.counter.limit.amount
