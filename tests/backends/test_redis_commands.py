"""The fixed window sends envoyproxy/ratelimit's commands and keys, byte for byte.

Each row: the counters of one request and the exact commands Redis must see (captured with
``MONITOR`` on a real redis-server), as in the reference's ``fixed_cache_impl_test.go``.
"""

from __future__ import annotations

import pytest

from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.testing.redis_server import RedisServer

from .redis_monitor import monitor

#: Generous: these tests check what is sent, not latency, on a busy machine.
TIMEOUT_S = 1.0


def fixed(amount: int, unit: Unit, multiplier: int = 1) -> Limit:
    return Limit(amount, unit, multiplier, algorithm=Algorithm.FIXED_WINDOW)


def hit(entries: tuple[tuple[str, str], ...], limit: Limit, hits: int = 1) -> Hit:
    return Hit(Counter("domain", entries, limit), hits)


KEY = (("key", "value"),)
CASES = [
    pytest.param(
        "", 1234, [hit(KEY, fixed(10, Unit.SECOND))],
        ["INCRBY domain_key_value_1234 1", "EXPIRE domain_key_value_1234 1"],
        id="one descriptor",
    ),
    pytest.param(
        "prefix:", 1234, [hit(KEY, fixed(10, Unit.SECOND))],
        ["INCRBY prefix:domain_key_value_1234 1", "EXPIRE prefix:domain_key_value_1234 1"],
        id="with prefix",
    ),
    pytest.param(
        "", 1_000_000,
        [hit((("key2", "value2"),), fixed(20, Unit.MINUTE)),
         hit((("key3", "value3"),), fixed(10, Unit.HOUR))],
        ["INCRBY domain_key2_value2_999960 1", "EXPIRE domain_key2_value2_999960 60",
         "INCRBY domain_key3_value3_997200 1", "EXPIRE domain_key3_value3_997200 3600"],
        id="two descriptors in one pipeline",
    ),
    pytest.param(
        "", 1_000_000, [hit((("key4", "value4"), ("sub", "x")), fixed(20, Unit.DAY), hits=5)],
        ["INCRBY domain_key4_value4_sub_x_950400 5",
         "EXPIRE domain_key4_value4_sub_x_950400 86400"],
        id="nested entries, day window, hits_addend",
    ),
    pytest.param(
        "", 1_000_000, [hit(KEY, fixed(3, Unit.MINUTE, multiplier=5), hits=0)],
        ["INCRBY domain_key_value_999900 0", "EXPIRE domain_key_value_999900 300"],
        id="our multiples: a 300 s window; zero hits only check",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("prefix", "now_s", "hits", "commands"), CASES)
async def test_fixed_window_commands_match_the_reference(
    redis_server: RedisServer, prefix: str, now_s: int, hits: list[Hit], commands: list[str]
) -> None:
    settings = RedisSettings(
        redis_server.url, key_prefix=prefix, expiration_jitter_max_s=0, timeout_s=TIMEOUT_S
    )
    store = RedisStore(settings)
    await store.connect()
    try:
        async with monitor(redis_server.url) as sent:
            await store.hit(hits, now_s * NS_PER_SECOND)
    finally:
        await store.close()
    assert sent == commands


async def test_expiry_jitter_stays_below_its_maximum(redis_server: RedisServer) -> None:
    settings = RedisSettings(
        redis_server.url, key_prefix="jitter:", expiration_jitter_max_s=300, timeout_s=TIMEOUT_S
    )
    store = RedisStore(settings)
    await store.connect()
    try:
        async with monitor(redis_server.url) as sent:
            for _ in range(20):
                await store.hit([hit(KEY, fixed(10, Unit.MINUTE))], 1234 * NS_PER_SECOND)
    finally:
        await store.close()
    expiries = [int(c.split()[-1]) for c in sent if c.startswith("EXPIRE")]
    assert len(expiries) == 20
    assert all(60 <= e < 60 + 300 for e in expiries)
    assert len(set(expiries)) > 1


async def test_token_buckets_and_windows_share_one_pipeline(redis_server: RedisServer) -> None:
    """A request with every algorithm: INCRBY+EXPIRE, then one EVALSHA for all the rest."""
    store = RedisStore(
        RedisSettings(redis_server.url, expiration_jitter_max_s=0, timeout_s=TIMEOUT_S)
    )
    await store.connect()
    hits = [
        hit(KEY, Limit(5, Unit.SECOND)),
        hit(KEY, fixed(5, Unit.MINUTE)),
        hit(KEY, Limit(5, Unit.HOUR, algorithm=Algorithm.SLIDING_WINDOW)),
    ]
    try:
        await store.hit(hits, 60 * NS_PER_SECOND)  # loads the script if Redis lacks it
        async with monitor(redis_server.url) as sent:
            await store.hit(hits, 60 * NS_PER_SECOND)
    finally:
        await store.close()
    assert [c.split()[0] for c in sent] == ["INCRBY", "EXPIRE", "EVALSHA"]
    assert sent[:2] == ["INCRBY domain_key_value_60 1", "EXPIRE domain_key_value_60 60"]
    assert sent[2].split()[2:5] == ["2", "domain_key_value_tb1", "domain_key_value_sw3600"]


async def test_a_batch_report_is_one_evalsha_whatever_its_size(redis_server: RedisServer) -> None:
    store = RedisStore(RedisSettings(redis_server.url, key_prefix="report:", timeout_s=TIMEOUT_S))
    await store.connect()
    report = [hit((("user", str(i)),), Limit(10, Unit.SECOND), hits=3) for i in range(500)]
    try:
        await store.debit(report[:1], 0)  # loads the script if Redis lacks it
        async with monitor(redis_server.url) as sent:
            outcomes = await store.debit(report, NS_PER_SECOND)
    finally:
        await store.close()
    assert [c.split()[:3] for c in sent] == [["EVALSHA", sent[0].split()[1], "500"]]
    assert [o.remaining for o in outcomes] == [7] * 500
