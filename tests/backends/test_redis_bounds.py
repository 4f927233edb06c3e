"""Issue 16 items 1 and 3 on the Redis backend, against a real redis-server: every key the store
writes expires, no debit leaves more debt than the horizon (nor a TTL longer than its refill),
a flood of distinct keys is still served and shows as pressure on Redis's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.backends.redis.pressure import memory_fill
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.token_bucket import DEBT_HORIZON_PERIODS
from ratekeeper.server.health import ServingHealth
from ratekeeper.testing.redis_server import RedisServer

S = NS_PER_SECOND
NOW = 1_763_700_000 * S
#: The largest count a report key may carry at all (ReportSettings.max_count): what a store
#: may be asked to debit before the report path's clamp, which only lowers it.
HUGE = 2**53 - 1
LIMITS = {
    "tb-10s": Limit(10, Unit.SECOND),
    "tb-1h": Limit(1, Unit.HOUR),
    "tb-lifetime": Limit(0, Unit.MINUTE, burst=5),  # never refills: a lifetime quota of 5
    "sw-5m": Limit(5, Unit.MINUTE, algorithm=Algorithm.SLIDING_WINDOW),
    "fw-100m": Limit(100, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW),
}
#: Redis's longest expiry the script sets (``MAX_TTL_MS`` in batch.lua).
MAX_TTL_MS = 2**46


async def _store(url: str, prefix: str) -> RedisStore:
    settings = RedisSettings(url, key_prefix=prefix, expiration_jitter_max_s=0, timeout_s=5.0)
    store = RedisStore(settings)
    await store.connect()
    return store


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


def _ttl_bound_ms(limit: Limit) -> int:
    """The longest life the store may give a key of ``limit`` (jitter 0)."""
    if limit.algorithm is Algorithm.FIXED_WINDOW:
        return limit.period_s * 1000
    if limit.algorithm is Algorithm.SLIDING_WINDOW:
        return 2 * limit.period_s * 1000
    if limit.amount == 0:
        return MAX_TTL_MS
    # from the debt floor back to full, and the script's margin for servers' clocks
    units = (limit.capacity + DEBT_HORIZON_PERIODS * limit.amount) * limit.period_ns
    return units // limit.amount // 1_000_000 + 1000


async def test_every_key_expires_and_no_debit_passes_the_horizon(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = await _store(redis_server.url, "bounds:")
    try:
        for name, limit in LIMITS.items():
            counter = Counter("d", (("k", name),), limit)
            await store.hit([Hit(counter, 1)], NOW)
            await store.debit([Hit(counter, HUGE, client="attacker")], NOW + S)
            await store.debit([Hit(counter, HUGE, client="attacker")], NOW + 2 * S)
            (after,) = await store.hit([Hit(counter, 1)], NOW + 2 * S)
            assert not after.allowed
            if limit.amount and limit.algorithm is Algorithm.TOKEN_BUCKET:
                # blocked at most the horizon: two periods of refill, and the token asked for
                horizon = DEBT_HORIZON_PERIODS * limit.period_ns + -(
                    -limit.period_ns // limit.amount
                )
                assert after.retry_after_ns <= horizon, name
        keys = [key async for key in raw.scan_iter("bounds:*")]
        assert len(keys) == len(LIMITS)
        for key in keys:
            name = key.decode().split("_")[2]
            ttl = await raw.pttl(key)
            assert 0 < ttl <= _ttl_bound_ms(LIMITS[name]), (name, ttl)  # no key lives forever
        for name in ("tb-10s", "tb-1h"):
            limit = LIMITS[name]
            level = int(await raw.hget(f"bounds:d_k_{name}_tb{limit.period_s}", "l") or 0)
            assert level == -DEBT_HORIZON_PERIODS * limit.amount * limit.period_ns  # the floor
    finally:
        await store.close()


async def test_a_flood_of_distinct_keys_is_served_and_shows_as_memory_pressure(
    tmp_path: Path,
) -> None:
    # Issue 16 item 3 on Redis: no key cap of ours to fill, so new keys of another domain are
    # still served after the flood; Redis's memory is what fills, and the store says so.
    server = RedisServer(tmp_path)
    raw = aioredis.from_url(server.url)
    store = RedisStore(
        RedisSettings(server.url, expiration_jitter_max_s=0, timeout_s=5.0, pressure_ratio=0.5)
    )
    await store.connect()
    try:
        base, _ = memory_fill(await raw.info("memory"))
        assert not store.pressure().under_pressure
        year = Limit(1, Unit.YEAR)
        for n in range(20):  # 20 calls x 1,024 descriptors under 1/year, as the attack
            flood = [Hit(Counter("rl", (("ip", f"{n}.{i}"),), year), 1) for i in range(1024)]
            assert all(outcome.allowed for outcome in await store.hit(flood, NOW))
        used, _ = memory_fill(await raw.info("memory"))
        await raw.config_set("maxmemory", str(base + (used - base) * 3 // 2))
        await store._memory.sample()  # as the next health check or scrape does within 1 s
        pressure = store.pressure()
        assert pressure.under_pressure, pressure
        assert pressure.fill > 0.5
        degraded = ServingHealth(store).degraded()
        assert degraded is not None
        assert degraded.kind == "store-pressure"
        assert "bytes of Redis memory" in degraded.why
        (stat,) = (s for s in store.stats() if s.name == "ratekeeper_store_pressure")
        assert stat.value == pytest.approx(pressure.fill)
        minute = Limit(5, Unit.MINUTE)
        others = [Hit(Counter("api", (("user", f"u{n}"),), minute), 1) for n in range(20)]
        assert all(outcome.allowed for outcome in await store.hit(others, NOW))  # still served
        ttls = [await raw.ttl(key) async for key in raw.scan_iter("rl_*", count=1000)]
        assert len(ttls) == 20 * 1024
        assert all(0 < ttl <= 3 * Unit.YEAR.value + 1 for ttl in ttls)  # the flood expires
    finally:
        await store.close()
        await raw.aclose()
        server.stop()
