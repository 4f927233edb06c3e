"""Whether one Redis answers, and the reconnect loop that notices when it is back.

After a failed round trip the store stops sending commands to that Redis (callers get
:class:`~ratekeeper.errors.BackendError` at once instead of each waiting out a timeout, which is
how envoyproxy/ratelimit#462 stalled every request for ~10 s) and probes it with ``PING`` at
exponentially growing intervals; the first answer brings it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from ratekeeper.errors import BackendError

__all__ = ["FAILURES", "Health"]

#: What a Redis that is down, hung or unreachable raises (``TimeoutError``: our own deadline).
FAILURES = (RedisError, OSError, TimeoutError)


class Health:
    """One Redis's health. Single writer: used from the event loop that runs the store."""

    def __init__(
        self, name: str, ping: Callable[[], Awaitable[object]], initial_s: float, max_s: float
    ) -> None:
        #: How errors name this Redis (its URL without credentials).
        self.name = name
        self._ping = ping
        self._initial_s = initial_s
        self._max_s = max_s
        # Unknown until the first round trip answers; the reference also starts unhealthy.
        self._up = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        """Whether the last round trip (or probe) was answered."""
        return self._up

    def check(self) -> None:
        """Raise :class:`BackendError` at once while this Redis is known to be down."""
        if self._probe is not None:
            raise BackendError(f"redis {self.name} is down; reconnecting")

    def succeeded(self) -> None:
        self._up = True

    def failed(self) -> None:
        """Record a failed round trip and start probing, if not already."""
        self._up = False
        if self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self._initial_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self._ping()
            except FAILURES:
                delay = min(2 * delay, self._max_s)
                continue
            self._up = True
            self._probe = None
            return

    async def close(self) -> None:
        """Stop probing."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
