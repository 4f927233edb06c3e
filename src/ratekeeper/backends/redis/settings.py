"""Typed settings of the Redis backend, each with its default and the envoyproxy/ratelimit
setting it mirrors (where there is one)."""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.errors import ConfigError

__all__ = ["RedisSettings"]


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How :class:`~ratekeeper.backends.redis.RedisStore` reaches Redis and counts."""

    #: ``redis://HOST:PORT/DB``, ``rediss://`` (TLS) or ``unix:///path?db=N`` (``REDIS_URL``).
    url: str = "redis://127.0.0.1:6379/0"
    #: A second Redis for limits whose unit is the second (``REDIS_PERSECOND_URL``); ``None``
    #: keeps every counter in :attr:`url`.
    per_second_url: str | None = None
    #: Prepended to every key, so that deployments can share one Redis (``CACHE_KEY_PREFIX``).
    key_prefix: str = ""
    #: Bound on each call, connecting included, in seconds. The reference's ``REDIS_TIMEOUT``
    #: defaults to 10 s, which stalls every request while Redis hangs (envoyproxy/ratelimit#462);
    #: Envoy's own ``ratelimit`` filter gives up after 20 ms by default.
    timeout_s: float = 0.05
    #: Connections per Redis (``REDIS_POOL_SIZE``); a call waits for a free one within its timeout.
    pool_size: int = 10
    #: Fixed-window keys live ``period + randint(0, jitter)`` seconds, so that keys written in
    #: the same second do not all expire together (``EXPIRATION_JITTER_MAX_SECONDS``); 0: none.
    expiration_jitter_max_s: int = 300
    #: Keys remembered in process as over their limit until their window ends, answered without
    #: Redis; 0 turns the cache off. Counted in entries (the reference's
    #: ``LOCAL_CACHE_SIZE_IN_BYTES`` counts bytes).
    local_cache_size: int = 0
    #: Read the fixed-window counters first and count nothing if any would go over
    #: (``STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT``); costs a second round trip.
    stop_increment_when_over: bool = False
    #: First wait before probing a Redis that failed; doubles up to :attr:`reconnect_max_s`.
    reconnect_initial_s: float = 0.025
    #: Longest wait between two probes of a Redis that is down.
    reconnect_max_s: float = 1.0
    #: Used over available memory (``maxmemory``, else the host's) from which the store says it
    #: is under pressure (``/healthcheck`` DEGRADED, ``ratekeeper_store_pressure``).
    pressure_ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(f"must be > 0, got {self.timeout_s}", key="redis.timeout_s")
        if self.pool_size < 1:
            raise ConfigError(f"must be >= 1, got {self.pool_size}", key="redis.pool_size")
        for name in ("expiration_jitter_max_s", "local_cache_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=f"redis.{name}")
        if not 0 < self.pressure_ratio <= 1:
            raise ConfigError(
                f"must lie in (0, 1], got {self.pressure_ratio}", key="redis.pressure_ratio"
            )
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ConfigError(
                "need 0 < reconnect_initial_s <= reconnect_max_s, got "
                f"{self.reconnect_initial_s} and {self.reconnect_max_s}",
                key="redis.reconnect_initial_s",
            )
