"""The live-server fuzz test starts servers as the server tests do."""

from tests.server.conftest import serve

__all__ = ["serve"]
