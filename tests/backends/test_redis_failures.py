"""Redis down or hung: every call answers or raises BackendError within the timeout, health
follows, and the store recovers on its own (compare envoyproxy/ratelimit#462, where each call
stalled ~10 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.errors import BackendError
from ratekeeper.testing.redis_server import RedisServer

TIMEOUT_S = 0.05
#: What a loaded two-core machine may add to the deadline (scheduling, the cancelled read).
SLACK_S = 0.05
FIXED = Limit(100, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)
HITS = [
    Hit(Counter("d", (("k", "fixed"),), FIXED), 1),
    Hit(Counter("d", (("k", "bucket"),), Limit(100, Unit.MINUTE)), 1),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, since the test breaks it."""
    s = RedisServer(tmp_path, name="redis-failing")
    yield s
    s.stop()


@pytest.fixture
async def store(server: RedisServer) -> AsyncIterator[RedisStore]:
    settings = RedisSettings(server.url, timeout_s=TIMEOUT_S, reconnect_max_s=0.2)
    s = RedisStore(settings)
    yield s
    await s.close()


async def calls_while_down(store: RedisStore, n: int) -> list[float]:
    """Seconds each of ``n`` calls took; every one must fail with BackendError."""
    took = []
    for i in range(n):
        started = time.perf_counter()
        with pytest.raises(BackendError):
            await store.hit(HITS, i * NS_PER_SECOND)
        took.append(time.perf_counter() - started)
    return took


async def wait_healthy(store: RedisStore, within_s: float = 5.0) -> float:
    started = time.perf_counter()
    while not store.healthy():
        assert time.perf_counter() - started < within_s, "the store did not recover"
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def test_starts_unhealthy_and_turns_healthy_once_redis_answers(store: RedisStore) -> None:
    assert not store.healthy()  # and starts probing
    await wait_healthy(store, within_s=2.0)


async def test_a_hung_redis_costs_each_call_at_most_the_timeout(
    server: RedisServer, store: RedisStore
) -> None:
    await store.connect()
    assert (await store.hit(HITS, 0))[0].remaining == 99
    errors_before = store.errors_total
    server.pause()  # SIGSTOP: the socket stays open, nothing answers
    try:
        took = await calls_while_down(store, 30)
        assert not store.healthy()
    finally:
        server.resume()
    print(f"hung redis: p100 {max(took) * 1000:.1f} ms over {len(took)} calls")
    assert max(took) <= TIMEOUT_S + SLACK_S
    assert store.errors_total - errors_before == 1  # then it fails fast while probing
    await wait_healthy(store)
    # The call that timed out had already reached Redis's socket and ran on resume (a timeout
    # does not mean "not counted"), and the connection it cut hands no stale reply to this one.
    assert [o.remaining for o in await store.hit(HITS, 0)] == [97, 97]


async def test_a_stopped_redis_fails_fast_and_a_restarted_one_is_found_again(
    server: RedisServer, store: RedisStore
) -> None:
    await store.connect()
    await store.hit(HITS, 0)
    server.stop()
    took = await calls_while_down(store, 30)
    assert not store.healthy()
    print(f"stopped redis: p100 {max(took) * 1000:.1f} ms over {len(took)} calls")
    assert max(took) <= TIMEOUT_S + SLACK_S
    server.start()  # same port, empty: counting starts again
    recovered_in = await wait_healthy(store)
    print(f"recovered {recovered_in * 1000:.0f} ms after restart")
    assert (await store.hit(HITS, 0))[0].remaining == 99


async def test_waiting_for_a_connection_is_bounded_and_says_nothing_of_health(
    store: RedisStore,
) -> None:
    """Every pooled connection busy (a burst of calls): the call fails within the timeout, and
    Redis is not declared down for it."""
    await store.connect()
    slots = store._main.slots  # white-box: hold every connection a call could use
    for _ in range(store.settings.pool_size):
        await slots.acquire()
    started = time.perf_counter()
    with pytest.raises(BackendError, match="queued for a connection"):
        await store.hit(HITS, 0)
    assert time.perf_counter() - started <= TIMEOUT_S + SLACK_S
    assert store.healthy()
    for _ in range(store.settings.pool_size):
        slots.release()
    assert (await store.hit(HITS, 0))[0].remaining == 99
