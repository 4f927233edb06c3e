"""Coordination on etcd v3 through aetcd, an asyncio client on grpc.aio (see docs/architecture.md).

The leader key holds the leader's advertised address and is written only if absent (create
revision 0), attached to the writer's lease. Its create revision is the fence: the stored
assignment is written in a transaction that first compares the leader key's create revision, so
a leader deposed while it was paused (its lease expired, a successor's key has another revision)
has its late write refused by etcd itself.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any, Final

import aetcd
import aetcd.exceptions

from ratekeeper.assigner.election import Leader
from ratekeeper.errors import ConfigError, CoordinationError

DEFAULT_PREFIX: Final = "/ratekeeper"
#: Each call's own deadline, so a stopped or paused etcd cannot hold the election's driver.
CALL_TIMEOUT_S: Final = 2


def parse_endpoints(text: str) -> tuple[tuple[str, int], ...]:
    """``http://h:p[,http://h2:p2…]`` (or bare ``h:p``) as (host, port) pairs."""
    endpoints = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        url = urllib.parse.urlsplit(item if "://" in item else f"http://{item}")
        if url.scheme != "http":
            raise ConfigError(f"etcd endpoint {item!r}: only http:// is supported")
        if not url.hostname or url.port is None:
            raise ConfigError(f"etcd endpoint {item!r}: expected http://HOST:PORT")
        endpoints.append((url.hostname, url.port))
    if not endpoints:
        raise ConfigError("no etcd endpoint given")
    return tuple(endpoints)


class EtcdCoordination:
    """:class:`ratekeeper.assigner.coordination.Coordination` on one etcd cluster."""

    __slots__ = ("_assignment_key", "_client", "_endpoints", "_leader_key", "_next")

    def __init__(self, endpoints: Sequence[tuple[str, int]], prefix: str = DEFAULT_PREFIX) -> None:
        if not endpoints:
            raise ConfigError("no etcd endpoint given")
        self._endpoints = tuple(endpoints)
        self._next = 0
        self._client: Any = None
        self._leader_key = f"{prefix}/leader".encode()
        self._assignment_key = f"{prefix}/assignment".encode()

    async def grant(self, ttl_s: int) -> tuple[int, int]:
        lease = await self._call("lease", ttl_s)
        return int(lease.id), int(lease.ttl)

    async def keep_alive(self, lease: int) -> int:
        reply = await self._call("refresh_lease", lease)
        return max(0, int(reply.TTL)) if reply is not None else 0

    async def campaign(self, lease: int, name: str) -> Leader | None:
        client = await self._connected()
        ops = client.transactions
        key = self._leader_key
        _, responses = await self._call(
            "transaction",
            compare=[ops.create(key) == 0],
            success=[ops.put(key, name.encode(), lease=lease), ops.get(key)],
            failure=[ops.get(key)],
        )
        found = [kv for response in responses if isinstance(response, list) for _, kv in response]
        if not found:
            return None  # vacated between the compare and the read
        kv = found[-1]
        return Leader(kv.value.decode(errors="replace"), int(kv.create_revision), int(kv.lease))

    async def holder(self) -> Leader | None:
        """Who holds the leader key now (for operators and tests), without campaigning."""
        got = await self._call("get", self._leader_key)
        if got is None:
            return None
        return Leader(got.value.decode(errors="replace"), int(got.create_revision), int(got.lease))

    async def revoke(self, lease: int) -> None:
        await self._call("revoke_lease", lease)

    async def save(self, data: bytes, fence: int) -> bool:
        client = await self._connected()
        ops = client.transactions
        succeeded, _ = await self._call(
            "transaction",
            compare=[ops.create(self._leader_key) == fence],
            success=[ops.put(self._assignment_key, data)],
            failure=[],
        )
        return bool(succeeded)

    async def load(self) -> bytes | None:
        got = await self._call("get", self._assignment_key)
        return bytes(got.value) if got is not None else None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _connected(self) -> Any:
        if self._client is None:
            host, port = self._endpoints[self._next % len(self._endpoints)]
            self._client = aetcd.Client(host=host, port=port, timeout=CALL_TIMEOUT_S)
        return self._client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = await self._connected()
        try:
            return await getattr(client, method)(*args, **kwargs)
        except (aetcd.exceptions.ClientError, OSError, TimeoutError) as error:
            # The next call tries the next endpoint: one dead member must not stop the election.
            await self.close()
            self._next += 1
            raise CoordinationError(f"etcd {method}: {type(error).__name__}: {error}") from error
