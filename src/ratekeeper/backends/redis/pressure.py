"""How full a Redis is: its memory, as the store's pressure signal (``/healthcheck``, metrics).

The Redis store has no key cap of its own: Redis never refuses a new key for want of a
ratekeeper slot, so the lockout of a full memory store (issue 16 item 3) cannot happen here.
What can fill is Redis's memory. Every key the store writes expires (a fixed window after its
period and jitter, a sliding window after two periods, a token bucket once full again, its debt
capped at the core's horizon), and descriptor text is bounded (``--max-text``), so what a flood
holds is bounded by its rate times its longest window; this module says how close to the
bound it is: ``used_memory`` over ``maxmemory`` (over the host's memory when ``maxmemory`` is
unset), under pressure from the store's ratio (0.9) on.

Sampled with ``INFO memory`` at most once per :data:`SAMPLE_S`, in the background: reading the
pressure (sync, from health and metrics) never waits for Redis. Until the first sample answers,
the pressure is nil (0 of 1). Single writer: the event loop that runs the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ratekeeper.backends.budgets import StorePressure
from ratekeeper.backends.redis.health import FAILURES

__all__ = ["SAMPLE_S", "MemoryPressure", "memory_fill"]

#: Least seconds between two ``INFO memory`` samples.
SAMPLE_S = 1.0


def memory_fill(info: Mapping[str, Any]) -> tuple[int, int]:
    """``(used, capacity)`` in bytes from ``INFO memory``: capacity is ``maxmemory``, or the
    host's memory when it is 0 (unset), or 0 if neither is known."""
    used = int(info.get("used_memory", 0))
    capacity = int(info.get("maxmemory", 0)) or int(info.get("total_system_memory", 0))
    return used, capacity


class MemoryPressure:
    """The fullest of the store's Redis servers, as a :class:`StorePressure` in bytes."""

    def __init__(
        self,
        samplers: Sequence[Callable[[], Awaitable[Mapping[str, Any]]]],
        ratio: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._samplers = samplers
        self._ratio = ratio
        self._timeout_s = timeout_s
        self._clock = clock
        self._fill = (0, 1)
        self._sampled_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def pressure(self) -> StorePressure:
        """The last sample; starts a new one in the background when it is older than
        :data:`SAMPLE_S` (and an event loop runs)."""
        now = self._clock()
        stale = self._sampled_at is None or now - self._sampled_at >= SAMPLE_S
        if stale and self._task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: keep the last sample
                self._task = asyncio.get_running_loop().create_task(self._sample())
        used, capacity = self._fill
        return StorePressure(used, capacity, 0, (), self._ratio, "bytes of Redis memory")

    async def sample(self) -> None:
        """Sample now (every Redis), and wait for it."""
        fills = []
        for sampler in self._samplers:
            with contextlib.suppress(*FAILURES):
                async with asyncio.timeout(self._timeout_s):
                    info = await sampler()
                used, capacity = memory_fill(info)
                if capacity > 0:
                    fills.append((used, capacity))
        if fills:
            self._fill = max(fills, key=lambda f: f[0] / f[1])
        self._sampled_at = self._clock()

    async def _sample(self) -> None:
        try:
            await self.sample()
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop a sample under way."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
