"""``@limiter.limit``: refused calls raise RateLimited and never run; coroutines stay coroutines."""

from __future__ import annotations

import inspect

import pytest

from ratekeeper.client.base import BaseLimiter
from ratekeeper.errors import RateLimited


def test_sync_function_keyed_by_argument() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="2/minute")
    calls: list[str] = []

    @lim.limit(key=lambda user: f"user:{user}")
    def fetch(user: str) -> str:
        calls.append(user)
        return user.upper()

    assert fetch("ann") == "ANN"
    assert fetch("ann") == "ANN"
    with pytest.raises(RateLimited) as refused:
        fetch("ann")
    assert refused.value.key == "user:ann"
    assert refused.value.decision.retry_after == pytest.approx(30, abs=0.1)
    assert fetch("bob") == "BOB"
    assert calls == ["ann", "ann", "bob"]


async def test_coroutine_function_with_a_constant_key() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")

    @lim.limit(key="ping", hits=1)
    async def ping() -> str:
        return "pong"

    assert inspect.iscoroutinefunction(ping)
    assert await ping() == "pong"
    with pytest.raises(RateLimited):
        await ping()
