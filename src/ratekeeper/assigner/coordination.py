"""The one narrow interface between the assigners and their coordination service (etcd).

Everything the election and the durable assignment need, and nothing else: leases, a campaign
for one leader key, and a fenced write and a read of the stored assignment. The election logic
(:mod:`ratekeeper.assigner.election`) is a passive machine tested without a service; this is
what its driver calls; :mod:`ratekeeper.assigner.etcd_coordination` implements it on etcd.
"""

from __future__ import annotations

from typing import Protocol

from ratekeeper.assigner.election import Leader


class Coordination(Protocol):
    """Leases, the leader key and the stored assignment. Every call may raise CoordinationError."""

    async def grant(self, ttl_s: int) -> tuple[int, int]:
        """A new lease: its id and the ttl granted, in seconds."""
        ...

    async def keep_alive(self, lease: int) -> int:
        """Renew ``lease``; the ttl left in seconds, 0 when the lease no longer exists."""
        ...

    async def campaign(self, lease: int, name: str) -> Leader | None:
        """Write the leader key as ``name`` under ``lease`` if vacant; its holder either way."""
        ...

    async def revoke(self, lease: int) -> None:
        """Give ``lease`` up, and the leader key with it if this lease holds it."""
        ...

    async def save(self, data: bytes, fence: int) -> bool:
        """Store ``data`` only while the leader key's create revision is ``fence``; if stored."""
        ...

    async def load(self) -> bytes | None:
        """The last stored assignment, or None."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...
