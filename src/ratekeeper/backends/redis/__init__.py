"""The legacy corner: envoyproxy/ratelimit-compatible fixed windows in Redis, and the Lua batch
script that applies token buckets (with debt) and sliding windows in one round trip."""

from ratekeeper.backends.redis.settings import RedisSettings
from ratekeeper.backends.redis.store import RedisStore

__all__ = ["RedisSettings", "RedisStore"]
