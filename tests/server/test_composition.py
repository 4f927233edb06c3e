"""The composition root's mapping of settings sections onto components: nothing lost on the way."""

from __future__ import annotations

import dataclasses

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.core.limits import Algorithm
from ratekeeper.server import app, stores
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import AlgorithmMode, ServerSettings


async def test_every_redis_field_reaches_the_store_and_the_url_is_the_backend() -> None:
    redis = RedisSettings(
        per_second_url="redis://second:6379/0",
        key_prefix="rk_",
        timeout_s=0.3,
        pool_size=4,
        expiration_jitter_max_s=9,
        local_cache_size=50,
        stop_increment_when_over=True,
        reconnect_initial_s=0.5,
        reconnect_max_s=4.0,
    )
    settings = ServerSettings(
        store=dataclasses.replace(
            ServerSettings().store, backend="redis://main:6380/2", redis=redis
        )
    )
    store = stores.open_store(settings)
    assert isinstance(store, RedisStore)
    assert store.settings == dataclasses.replace(redis, url="redis://main:6380/2")
    await store.close()


async def test_reconnect_flags_reach_the_redis_store() -> None:
    settings = with_options(
        ServerSettings(),
        backend="redis://main:6379/0",
        redis_reconnect_initial=0.1,
        redis_reconnect_max=2.0,
    )
    store = stores.open_store(settings)
    assert isinstance(store, RedisStore)
    assert (store.settings.reconnect_initial_s, store.settings.reconnect_max_s) == (0.1, 2.0)
    await store.close()


def test_the_memory_store_gets_its_size_and_expiry() -> None:
    store = stores.open_store(with_options(ServerSettings(), max_keys=64, idle_expiry=2.5))
    assert isinstance(store, MemoryStore)
    assert store._idle_ns == 2_500_000_000
    assert store._shard_cap * len(store._shards) == 64


def test_rls_settings_come_from_the_answers_and_policy_sections() -> None:
    settings = with_options(
        ServerSettings(),
        shadow_mode=True,
        quota_mode=True,
        fail_closed=True,
        near_limit_ratio=0.5,
        limit_response_headers_enabled=True,
        limit_reset_header="X-Reset",
        algorithm=AlgorithmMode.FIXED_WINDOW,
    )
    rls = app.rls_settings(settings)
    assert (rls.shadow_mode, rls.quota_mode, rls.fail_closed) == (True, True, True)
    assert rls.near_limit_ratio == 0.5
    assert rls.headers == ("RateLimit-Limit", "RateLimit-Remaining", "X-Reset")
    assert rls.override_algorithm is Algorithm.FIXED_WINDOW
    assert app.rls_settings(ServerSettings()).override_algorithm is Algorithm.TOKEN_BUCKET
    assert app.rls_settings(ServerSettings()).headers is None
