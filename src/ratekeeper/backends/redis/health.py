"""Whether one Redis answers, and the reconnect loop that notices when it is back.

After a failed round trip the store stops sending commands to that Redis (callers get
:class:`~ratekeeper.errors.BackendError` at once instead of each waiting out a timeout, which is
how envoyproxy/ratelimit#462 stalled every request for ~10 s) and probes it with ``PING`` at
exponentially growing intervals; the first answer brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from ratekeeper.errors import BackendError

__all__ = ["FAILURES", "RedisHealth"]

#: What a Redis that is down, hung or unreachable raises (``TimeoutError``: our own deadline).
FAILURES = (RedisError, OSError, TimeoutError)


class RedisHealth:
    """One Redis's health. Single writer: used from the event loop that runs the store."""

    def __init__(
        self, name: str, ping: Callable[[], Awaitable[object]], initial_s: float, max_s: float
    ) -> None:
        #: How errors name this Redis (its URL without credentials).
        self.name = name
        self._ping = ping
        self._initial_s = initial_s
        self._max_s = max_s
        # Unknown until a round trip answers: the reference also starts unhealthy.
        self._up = False
        # A round trip failed and no probe has answered since: calls fail fast.
        self._down = False
        self._probe: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def up(self) -> bool:
        """Whether the last round trip (or probe) was answered.

        Asked before any call (a readiness check at start-up), it starts a probe, so that an
        idle server turns healthy once Redis answers.
        """
        if not self._up and self._probe is None and not self._closed:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe from
                self._start_probe(0.0)
        return self._up

    def check(self) -> None:
        """Raise :class:`BackendError` at once while this Redis is known to be down."""
        if self._down:
            raise BackendError(f"redis {self.name} is down; reconnecting")

    def succeeded(self) -> None:
        self._up = True

    def failed(self) -> None:
        """Record a failed round trip and start probing, if not already."""
        self._up = False
        self._down = True
        if self._probe is None:
            self._start_probe(self._initial_s)

    def _start_probe(self, first_delay: float) -> None:
        self._probe = asyncio.get_running_loop().create_task(self._reconnect(first_delay))

    async def _reconnect(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            try:
                await self._ping()
            except FAILURES:
                delay = min(max(2 * delay, self._initial_s), self._max_s)
                continue
            self._up = True
            self._down = False
            self._probe = None
            return

    async def close(self) -> None:
        """Stop probing, for good."""
        self._closed = True
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
