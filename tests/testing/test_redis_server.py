"""The redis-server helper: free port, restart on the same port, freeze and thaw."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ratekeeper.testing.procs import ToolMissing
from ratekeeper.testing.redis_server import RedisServer, redis_binary

pytestmark = pytest.mark.integration


def _ping(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_it_serves_stops_and_comes_back_on_its_port(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert _ping(server.port) == b"+PONG\r\n"
        server.stop()
        assert server.process is None
        with pytest.raises(OSError):
            _ping(server.port)
        server.start()
        assert _ping(server.port) == b"+PONG\r\n"
    finally:
        server.stop()
    server.stop()  # idempotent


def test_a_frozen_server_answers_nothing_until_thawed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        server.pause()
        with pytest.raises(TimeoutError):
            _ping(server.port, timeout=0.3)
        server.resume()
        assert _ping(server.port) == b"+PONG\r\n"
    finally:
        server.stop()


def test_a_missing_binary_raises_tool_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="make sysdeps"):
        redis_binary()
