"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the whole session; keep tests apart with key prefixes."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
