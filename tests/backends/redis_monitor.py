"""What a store sends to Redis, as Redis itself saw it (``MONITOR``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

__all__ = ["monitor"]

_END = "monitor-end-marker"
#: What redis-py sends when it opens a connection: not part of any request.
_HANDSHAKE = {"HELLO", "CLIENT", "SELECT", "AUTH"}


@contextlib.asynccontextmanager
async def monitor(url: str) -> AsyncIterator[list[str]]:
    """Every command clients sent in the block (not scripts' own, nor connection handshakes)."""
    client = aioredis.from_url(url)
    seen: list[str] = []
    try:
        async with client.monitor() as m:
            await m.connect()
            yield seen
            await client.echo(_END)
            while True:
                entry = await m.next_command()
                if entry.get("client_type") == "lua":
                    continue
                if entry["command"].split()[0].upper() in _HANDSHAKE:
                    continue
                if entry["command"] == f"ECHO {_END}":
                    break
                seen.append(entry["command"])
    finally:
        await client.aclose()
