"""``make_store``: every test here runs once per store; ``make_movable`` once per store that
hands slices over with their state (the others skip, saying why)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ratekeeper.backends.store import Store, TransferUnsupported

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


@pytest.fixture(scope="session")
def make_movable(make_store: StoreFactory) -> StoreFactory:
    """``make_store`` for stores that export and import; a store that raises
    :class:`TransferUnsupported` (Redis: already shared state) skips with its own reason."""

    async def refusal() -> str | None:
        store = make_store()
        try:
            await store.export(0, 0, 0)
        except TransferUnsupported as exc:
            return str(exc)
        finally:
            await store.close()
        return None

    reason = asyncio.run(refusal())
    if reason is not None:
        pytest.skip(reason)
    return make_store
