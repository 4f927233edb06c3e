"""The store a server counts in, picked by its backend URL's scheme (:data:`STORES`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import urlsplit

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.redis import RedisStore
from ratekeeper.backends.store import Store
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.errors import ConfigError
from ratekeeper.server.settings import ServerSettings, StoreSettings

__all__ = ["STORES", "open_store"]


def _memory_store(url: str, settings: StoreSettings) -> Store:
    return MemoryStore(
        max_keys=settings.max_keys,
        idle_expiry_ns=int(settings.idle_expiry_s * NS_PER_SECOND),
        budgets=settings.budgets,
    )


def _redis_store(url: str, settings: StoreSettings) -> Store:
    # Every Redis field passes through as set; only the URL comes from the backend.
    return RedisStore(dataclasses.replace(settings.redis, url=url))


#: Backend URL scheme → store factory.
STORES: dict[str, Callable[[str, StoreSettings], Store]] = {
    "memory": _memory_store,
    "redis": _redis_store,
    "rediss": _redis_store,
    "unix": _redis_store,
}


def open_store(settings: ServerSettings) -> Store:
    """The store the backend URL names; raises ConfigError for an unknown scheme."""
    backend = settings.store.backend
    factory = STORES.get(urlsplit(backend).scheme)
    if factory is None:
        known = ", ".join(f"{name}://" for name in STORES)
        raise ConfigError(f"unknown backend {backend!r}; known: {known}", key="backend")
    return factory(backend, settings.store)
