"""Whether one server process is serving: config loaded, store healthy, not shutting down.

One answer feeds both ``GET /healthcheck`` and ``grpc.health.v1`` (service names ``""`` and
``"ratelimit"``). Serving may be degraded, which a load balancer must not drain it for but an
operator should see: the store under pressure, or no config loaded (the server started with an
invalid or absent config and answers every descriptor OK until it loads; see
:mod:`ratekeeper.server.reload`). Thread safety: event loop only; :meth:`ServingHealth.refresh`
never blocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ratekeeper.backends.budgets import PressureReporting
from ratekeeper.backends.store import Store
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.server.reload import NoConfig

__all__ = ["GRPC_SERVICE_NAMES", "Degraded", "ServingHealth"]

log = logging.getLogger(__name__)

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
        #: The ready line's details while it waits for the process to serve.
        self._announce: str | None = None
        #: Whether it has served since it started (so a return to serving is "again").
        self._was_serving = False

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
        return self.not_serving() is None

    def not_serving(self) -> str | None:
        """Why the process is NOT_SERVING, for the log; ``None`` while it serves."""
        if self._shutting_down:
            return "shutting down"
        if not self._config_loaded:
            return "starting"
        if self._domains_of is not None and not self._domains_of.policy.domains:
            return "no domain loaded, which --healthy-with-at-least-one-config-loaded requires"
        if not self._store.healthy():
            return "the store does not answer"
        return None

    def announce(self, where: str) -> None:
        """Log ``ratekeeper ready <where>`` (the listeners, config, backend) if serving now;
        else a warning saying why not, and the ready line once it serves (:meth:`refresh`)."""
        why = self.not_serving()
        if why is None:
            log.info("ratekeeper ready %s", where)
            return
        self._announce = where
        log.warning("ratekeeper started, not serving yet (%s): %s", why, where)

    async def config_loaded(self) -> None:
        """Start-up is done: a config is in force, or :class:`NoConfig` (see the module doc)."""
        self._config_loaded = True
        await self.refresh()

    async def shutting_down(self) -> None:
        """From now on NOT_SERVING, so load balancers drain this process."""
        self._shutting_down = True
        await self.refresh()

    async def refresh(self) -> None:
        """Publish the current answer to gRPC health watchers if it changed, and log the
        change (the ready line, if :meth:`announce` still owes it)."""
        why = self.not_serving()
        serving = why is None
        if serving is self._published:
            return
        if serving and self._announce is not None:
            log.info("ratekeeper ready %s", self._announce)
            self._announce = None
        elif serving and self._published is False and self._was_serving:
            log.info("serving again")
        elif not serving and self._published and not self._shutting_down:
            log.warning("not serving: %s", why)
        self._published = serving
        self._was_serving = self._was_serving or serving
        for name in GRPC_SERVICE_NAMES:
            await self.servicer.set(name, _STATUS[serving])
