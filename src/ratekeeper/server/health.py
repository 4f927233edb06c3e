"""Whether one server process is serving: config loaded, store healthy, not shutting down.

One answer feeds both ``GET /healthcheck`` and ``grpc.health.v1`` (service names ``""`` and
``"ratelimit"``). Thread safety: event loop only; :meth:`ServingHealth.refresh` never blocks.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ratekeeper.backends.budgets import PressureReporting
from ratekeeper.backends.store import Store

__all__ = ["GRPC_SERVICE_NAMES", "ServingHealth"]

#: Names under which gRPC health is served (the reference uses "ratelimit").
GRPC_SERVICE_NAMES = ("", "ratelimit")
_STATUS = {
    True: health_pb2.HealthCheckResponse.SERVING,
    False: health_pb2.HealthCheckResponse.NOT_SERVING,
}


class ServingHealth:
    """Serving when the config is loaded and the store answers, until shutdown begins."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.servicer = health_aio.HealthServicer()
        self._config_loaded = False
        self._shutting_down = False
        self._published: bool | None = None

    def degraded(self) -> str | None:
        """Why the process serves degraded (a store under pressure: some new keys refused), or
        ``None``. Serving still: a load balancer must not drain it for this."""
        store = self._store
        if isinstance(store, PressureReporting):
            pressure = store.pressure()
            if pressure.under_pressure:
                return pressure.describe()
        return None

    def serving(self) -> bool:
        """The current answer."""
        return self._config_loaded and not self._shutting_down and self._store.healthy()

    async def config_loaded(self) -> None:
        """A config is in force (the server starts only with one)."""
        self._config_loaded = True
        await self.refresh()

    async def shutting_down(self) -> None:
        """From now on NOT_SERVING, so load balancers drain this process."""
        self._shutting_down = True
        await self.refresh()

    async def refresh(self) -> None:
        """Publish the current answer to gRPC health watchers if it changed."""
        serving = self.serving()
        if serving is self._published:
            return
        self._published = serving
        for name in GRPC_SERVICE_NAMES:
            await self.servicer.set(name, _STATUS[serving])
