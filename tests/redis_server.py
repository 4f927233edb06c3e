"""Moved to :mod:`ratekeeper.testing.redis_server`; this name stays until the tests that import
it (tests/backends) import the package instead."""

from ratekeeper.testing.redis_server import RedisServer

__all__ = ["RedisServer"]
