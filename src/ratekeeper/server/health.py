"""Whether one server process is serving: config loaded, store healthy, not shutting down.

One answer feeds both ``GET /healthcheck`` and ``grpc.health.v1`` (service names ``""`` and
``"ratelimit"``). Serving may be degraded, which a load balancer must not drain it for but an
operator should see: the store under pressure, or no config loaded (the server started with an
invalid or absent config and answers every descriptor OK until it loads; see
:mod:`ratekeeper.server.reload`). Thread safety: event loop only; :meth:`ServingHealth.refresh`
never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ratekeeper.backends.budgets import PressureReporting
from ratekeeper.backends.store import Store
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.server.reload import NoConfig

__all__ = ["GRPC_SERVICE_NAMES", "Degraded", "ServingHealth"]

#: Names under which gRPC health is served (the reference uses "ratelimit").
GRPC_SERVICE_NAMES = ("", "ratelimit")
_STATUS = {
    True: health_pb2.HealthCheckResponse.SERVING,
    False: health_pb2.HealthCheckResponse.NOT_SERVING,
}


@dataclass(frozen=True, slots=True)
class Degraded:
    """How a serving process is degraded."""

    #: A short token for the ``x-ratekeeper-degraded`` header: ``no-config``, ``store-pressure``.
    kind: str
    #: What an operator reads (the body of ``/healthcheck``).
    why: str


class ServingHealth:
    """Serving when the config is loaded and the store answers, until shutdown begins."""

    def __init__(
        self, store: Store, policy: PolicyHolder | None = None, *, require_domain: bool = False
    ) -> None:
        """``policy``: the policy in force (its :class:`NoConfig` is reported as degraded).
        ``require_domain``: serve only while it defines a domain (the reference's
        ``HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED``); off: an empty config serves too."""
        self._store = store
        self._policy = policy
        self._domains_of = policy if require_domain else None
        self.servicer = health_aio.HealthServicer()
        self._config_loaded = False
        self._shutting_down = False
        self._published: bool | None = None

    def degraded(self) -> Degraded | None:
        """How the process serves degraded (no config loaded; a store under pressure: some new
        keys refused), or ``None``. Serving still: a load balancer must not drain it for this."""
        loaded = self._policy.policy if self._policy is not None else None
        if isinstance(loaded, NoConfig):
            return Degraded("no-config", loaded.describe().strip())
        store = self._store
        if isinstance(store, PressureReporting):
            pressure = store.pressure()
            if pressure.under_pressure:
                return Degraded("store-pressure", pressure.describe())
        return None

    def serving(self) -> bool:
        """The current answer."""
        if self._domains_of is not None and not self._domains_of.policy.domains:
            return False
        return self._config_loaded and not self._shutting_down and self._store.healthy()

    async def config_loaded(self) -> None:
        """Start-up is done: a config is in force, or :class:`NoConfig` (see the module doc)."""
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
