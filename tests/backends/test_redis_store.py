"""RedisStore's reference-service options, script loading, and the Lua state checked field by
field against the core's."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.redis import RedisSettings, RedisStore, batch, keys
from ratekeeper.backends.store import Counter, Hit, Snapshot, TransferUnsupported
from ratekeeper.core.algorithms import STRATEGIES
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.sliding_window import SlidingWindow
from ratekeeper.core.token_bucket import TokenBucket
from ratekeeper.errors import BackendError, RatekeeperError
from ratekeeper.server.metrics import Metrics
from ratekeeper.testing.redis_server import RedisServer

from .redis_monitor import monitor

S = NS_PER_SECOND
NOW = 1_763_700_000 * S
FIXED = Algorithm.FIXED_WINDOW


def counter(value: str, limit: Limit) -> Counter:
    return Counter("d", (("k", value),), limit)


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


#: Generous: these tests check answers, not latency (test_redis_failures.py does), on a busy box.
TIMEOUT_S = 5.0


async def open_store(url: str, **options: Any) -> RedisStore:
    settings = RedisSettings(url, expiration_jitter_max_s=0, timeout_s=TIMEOUT_S)
    store = RedisStore(replace(settings, **options))
    await store.connect()
    return store


async def test_local_cache_answers_keys_over_their_limit_until_the_window_ends(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(
        RedisSettings(redis_server.url, key_prefix="lc:", local_cache_size=8, timeout_s=TIMEOUT_S)
    )
    over = Hit(counter("a", Limit(2, Unit.SECOND, algorithm=FIXED)), 1)
    try:
        assert [(await store.hit([over], NOW))[0].allowed for _ in range(3)] == [True, True, False]
        async with monitor(redis_server.url) as sent:
            (cached,) = await store.hit([over], NOW + S // 2)
        assert sent == []  # answered without Redis
        assert cached == Outcome(False, 0, S // 2, S // 2)
        assert store.counts().over_limit_with_local_cache == 1
        metrics = Metrics(max_stats_keys=10)
        metrics.watch_store(store)
        assert b"ratekeeper_over_limit_with_local_cache_total 1.0" in metrics.render()
        async with monitor(redis_server.url) as sent:
            (fresh,) = await store.hit([over], NOW + S)  # the next window asks Redis again
        assert fresh.allowed
        assert sent[0] == "INCRBY lc:d_k_a_1763700001 1"
    finally:
        await store.close()


async def test_per_second_limits_go_to_their_own_redis(
    redis_server: RedisServer, raw: aioredis.Redis, tmp_path: Path
) -> None:
    second = RedisServer(tmp_path, name="redis-persecond")
    try:
        store = await open_store(redis_server.url, per_second_url=second.url, key_prefix="ps:")
        hits = [
            Hit(counter("s", Limit(5, Unit.SECOND, algorithm=FIXED)), 2),
            Hit(counter("m", Limit(5, Unit.MINUTE, algorithm=FIXED)), 3),
        ]
        outcomes = await store.hit(hits, NOW)
        await store.close()
        assert [o.remaining for o in outcomes] == [3, 2]
        per_second = aioredis.from_url(second.url)
        assert await per_second.get("ps:d_k_s_1763700000") == b"2"
        assert await per_second.get("ps:d_k_m_1763700000") is None
        await per_second.aclose()
        assert await raw.get("ps:d_k_m_1763700000") == b"3"
        assert await raw.get("ps:d_k_s_1763700000") is None
    finally:
        second.stop()


async def test_stop_increment_counts_nothing_when_any_window_would_go_over(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = await open_store(redis_server.url, key_prefix="stop:", stop_increment_when_over=True)
    small = counter("small", Limit(2, Unit.SECOND, algorithm=FIXED))
    large = counter("large", Limit(10, Unit.SECOND, algorithm=FIXED))
    try:
        first = await store.hit([Hit(small, 2), Hit(large, 2)], NOW)
        assert [o.remaining for o in first] == [0, 8]
        async with monitor(redis_server.url) as sent:
            second = await store.hit([Hit(small, 1), Hit(large, 1)], NOW)
    finally:
        await store.close()
    assert sent == ["GET stop:d_k_small_1763700000", "GET stop:d_k_large_1763700000"]
    assert [(o.allowed, o.remaining) for o in second] == [(False, 0), (True, 8)]
    assert await raw.get("stop:d_k_small_1763700000") == b"2"
    assert await raw.get("stop:d_k_large_1763700000") == b"2"


async def test_a_flushed_script_is_loaded_again(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = await open_store(redis_server.url, key_prefix="flush:")
    c = counter("tb", Limit(3, Unit.SECOND))
    try:
        assert (await store.hit([Hit(c, 1)], NOW))[0].remaining == 2
        await raw.script_flush()
        assert (await store.hit([Hit(c, 1)], NOW))[0].remaining == 1
    finally:
        await store.close()


async def test_an_error_reply_fails_the_call_but_not_the_health(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = await open_store(redis_server.url, key_prefix="wrongtype:")
    c = counter("x", Limit(3, Unit.SECOND))
    await raw.set("wrongtype:d_k_x_tb1", "not a hash")
    try:
        for flushed in (False, True):  # the error comes from the pipeline, or from the resend
            if flushed:
                await raw.script_flush()
            with pytest.raises(BackendError, match="WRONGTYPE"):
                await store.hit([Hit(c, 1)], NOW)
            assert store.healthy()
        assert store.errors_total == 2
    finally:
        await store.close()


async def test_unix_socket_urls_work(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, name="redis-unix", unixsocket=tmp_path / "redis.sock")
    try:
        store = await open_store(f"unix://{tmp_path / 'redis.sock'}?db=2")
        (outcome,) = await store.hit([Hit(counter("u", Limit(3, Unit.SECOND)), 1)], NOW)
        assert outcome.remaining == 2
        assert store.healthy()
        await store.close()
    finally:
        server.stop()


def self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in one PEM file."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pem, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(pem), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    pem.write_text(pem.read_text() + key.read_text())
    return pem


async def test_tls_urls_work(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, name="redis-tls", tls_cert=self_signed_certificate(tmp_path))
    try:
        assert server.url.startswith("rediss://")
        store = await open_store(server.url)
        (outcome,) = await store.hit([Hit(counter("t", Limit(3, Unit.SECOND)), 1)], NOW)
        assert outcome.remaining == 2
        await store.close()
    finally:
        server.stop()


# --- the stored state is the core's state -----------------------------------------------------

big_limits = st.builds(
    Limit,
    amount=st.integers(0, 10) | st.integers(0, 10**15),
    unit=st.sampled_from(Unit),
    multiplier=st.integers(1, 1000),
    burst=st.none() | st.integers(0, 10**16),
    algorithm=st.sampled_from([Algorithm.TOKEN_BUCKET, Algorithm.SLIDING_WINDOW]),
)
steps = st.lists(
    st.tuples(
        st.integers(-(10**9), 10**13) | st.integers(0, 10**18),
        st.integers(0, 3) | st.integers(0, 10**12),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


_examples = itertools.count()


def _stored(limit: Limit, fields: dict[bytes, bytes]) -> TokenBucket | SlidingWindow:
    if limit.algorithm is Algorithm.TOKEN_BUCKET:
        return TokenBucket(int(fields[b"l"]), int(fields[b"t"]))
    return SlidingWindow(int(fields[b"s"]), int(fields[b"c"]), int(fields[b"p"]))


@settings(max_examples=40, deadline=None)
@given(limit=big_limits, start=st.integers(NOW, 2**62), sequence=steps)
def test_the_script_stores_exactly_the_core_state(
    redis_server: RedisServer, limit: Limit, start: int, sequence: list[tuple[int, int, bool]]
) -> None:
    """Big amounts, long periods and far-future clocks: every product passes 2^53 (Lua's
    doubles) and often 2^64; the stored level, time and counts must still equal the core's."""

    async def play() -> None:
        prefix = f"state{next(_examples)}:"
        store = await open_store(redis_server.url, key_prefix=prefix)
        raw = aioredis.from_url(redis_server.url)
        c = counter(str(start), limit)
        strategy = STRATEGIES[limit.algorithm]
        state = None
        tag = "tb" if limit.algorithm is Algorithm.TOKEN_BUCKET else "sw"
        key = f"{prefix}d_k_{start}_{tag}{limit.period_s}"
        now = start
        try:
            for gap, hits, reported in sequence:
                now = max(0, now + gap)
                if state is None:  # the store makes a counter on its first call, as the core
                    state = strategy.new(limit, now)
                if reported:
                    await store.debit([Hit(c, hits)], now)
                    strategy.debit(state, limit, now, hits)
                else:
                    (got,) = await store.hit([Hit(c, hits)], now)
                    assert got == strategy.hit(state, limit, now, hits)
                assert _stored(limit, await raw.hgetall(key)) == state
        finally:
            await store.close()
            await raw.aclose()
            await asyncio.sleep(0)

    asyncio.run(play())


async def test_slices_move_without_state_so_transfer_says_why(redis_server: RedisServer) -> None:
    """Every server sharing Redis already sees its counters: there is nothing to export."""
    store = RedisStore(RedisSettings(redis_server.url, key_prefix="transfer:"))
    try:
        calls = [store.export(0, 1, NOW), store.import_(Snapshot(0, 1), NOW), store.drop(0, 1)]
        calls.append(store.start_empty(0, 1, NOW))
        for call in calls:
            with pytest.raises(TransferUnsupported, match="Redis is already the state"):
                await call
        assert issubclass(TransferUnsupported, RatekeeperError)
    finally:
        await store.close()


def test_the_script_offers_exactly_the_operations_the_keys_are_tagged_with() -> None:
    """keys.STATE_TAGS is the one Python table of tags; batch.lua must offer exactly those."""
    table = re.search(r"local OPERATIONS = \{(.*)\}", batch.SCRIPT)
    assert table is not None
    assert set(re.findall(r"(\w+) = \{", table.group(1))) == set(keys.STATE_TAGS.values())
    assert set(keys.STATE_TAGS) == set(Algorithm) - {Algorithm.FIXED_WINDOW}
