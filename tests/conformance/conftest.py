"""``make_store``: every test here runs once per store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ratekeeper.backends.store import Store

from .stores import CoreStore, StoreFactory, memory_store, redis_store


@pytest.fixture(scope="session", params=["core", "memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A factory of fresh stores of one kind. Session-scoped, so hypothesis tests can use it."""
    if request.param == "redis":
        return redis_store(request.getfixturevalue("redis_server").url)
    return {"core": CoreStore, "memory": memory_store}[request.param]


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    yield s
    await s.close()
