"""The sidecar process: a localhost Envoy RLS endpoint answering every call locally.

Composition (the server's parts, one store swapped): the same policy loading, the same
:class:`~ratekeeper.protocol.rls.RlsDecider`, servicer, ``/json`` and metrics as ``ratekeeper
serve``, over a :class:`~ratekeeper.sidecar.store.SidecarStore` instead of a memory or Redis
store. The store decides on the embedded batch-reporting client's state; that client's reporter
thread (``ratekeeper.Limiter``'s) sends the admitted and rejected counts to the servers every
report interval and applies their instructions. Off the event loop on purpose: a report cycle
(collecting a hundred keys, sending, applying the answers) takes milliseconds of Python, and on
the loop every call arriving meanwhile waited for it; in its thread it yields the interpreter
within the switch interval :func:`run` shortens.

Failure: while a server does not answer, its keys are decided on local state alone (each
limit enforced locally in full, so each sidecar admits up to the whole limit: fail open), the
counts are kept and sent once it answers again. ``GET /healthcheck`` stays 200 then (Envoy must
keep calling a sidecar that answers), with the body ``DEGRADED ...`` naming the servers and the
header ``x-ratekeeper-degraded: servers-unreachable``; 500 only while shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from ratekeeper.client.limiter import Limiter
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.errors import RatekeeperError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.protocol.stats import Event
from ratekeeper.server.app import config_path, policy_loader, rls_settings, settle_gc
from ratekeeper.server.health import ServingHealth
from ratekeeper.server.http import HttpEndpoints
from ratekeeper.server.listeners import HttpListeners, grpc_options, security_for_logs
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.reload import ConfigWatcher, file_signature
from ratekeeper.server.rls_servicer import RlsServicer, add_rls_servicer
from ratekeeper.server.settings import ServerSettings
from ratekeeper.sidecar.methods import (
    HEALTH_CHECK,
    SHOULD_RATE_LIMIT,
    health_check,
    should_rate_limit,
)
from ratekeeper.sidecar.store import SidecarStore
from ratekeeper.transport.h2.serving import UdsServer
from ratekeeper.transport.listening import bind_grpc
from ratekeeper.transport.tls import TlsSettings, read_token

__all__ = ["DEGRADED_HEADER", "Sidecar", "SidecarOptions", "run"]

log = logging.getLogger(__name__)

#: The response header ``/healthcheck`` adds while some server is not answering.
DEGRADED_HEADER = "x-ratekeeper-degraded"
#: The interpreter's thread switch interval in a sidecar process (seconds).
_SWITCH_INTERVAL_S = 0.0001


@dataclass(frozen=True, slots=True)
class SidecarOptions:
    """What a sidecar adds to the server's settings."""

    #: The servers reported to (``host:port``; several split the hash space, in order).
    servers: tuple[str, ...]
    #: Seconds between reports.
    report_interval: float = 0.1
    #: This sidecar's identity on the servers (default: host, pid, random suffix).
    client_id: str | None = None
    #: TLS to the servers (``None``: plaintext), and the servers' shared token.
    tls: TlsSettings | None = None
    auth_token: str | None = None


class _Reporter(Limiter):
    """The threaded client (reporting from construction on), its machine lent to the store."""

    @property
    def machine(self) -> LimiterMachine:
        return self._machine


class Sidecar:
    """The listeners and the reporter of one sidecar, on the running event loop."""

    def __init__(
        self,
        settings: ServerSettings,
        options: SidecarOptions,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.grpc_port = 0
        self.http_port = 0
        self.metrics = Metrics(settings.metrics.max_stats_keys)
        self.policy = PolicyHolder(policy_loader(settings)())
        self.metrics.count(Event.CONFIG_LOAD_SUCCESS)
        self.reporter = _Reporter(
            list(options.servers),
            report_interval=options.report_interval,
            client_id=options.client_id,
            max_keys=settings.store.max_keys,
            tls=options.tls,
            auth_token=options.auth_token,
        )
        self.store = SidecarStore(self.reporter.machine, settings.store.max_keys)
        self.metrics.watch_store(self.store)
        self.decider = RlsDecider(
            self.policy, StoreGate(self.store), self.metrics, rls_settings(settings)
        )
        self.health = ServingHealth(self.store)
        # The server's listener setup: idle and slow connections closed, TLS as the settings
        # say (--grpc-tls-*, --http-tls-*), the admin paths behind the token and on their own
        # port when asked (--auth-token-file, --admin-listen).
        self._grpc = grpc.aio.server(options=grpc_options(settings.listeners))
        add_rls_servicer(RlsServicer(self.decider, self.metrics, clock), self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._grpc)
        endpoints = HttpEndpoints(self.decider, clock, self.health, self.metrics, self.policy)
        token_file = settings.auth.token_file
        self.auth_token = read_token(token_file) if token_file else None
        self._http = HttpListeners(endpoints, settings, self.auth_token, (self._healthcheck,))
        # The unix socket (Envoy's path) is served in the loop's own thread, not by grpc.aio:
        # see ratekeeper.transport.h2.connection for why.
        self._uds = UdsServer(
            {
                SHOULD_RATE_LIMIT: should_rate_limit(self.decider, self.metrics, clock),
                HEALTH_CHECK: health_check(self.health),
            }
        )

    @property
    def admin_port(self) -> int:
        """The admin listener's port once started (``--admin-listen``); 0 without one."""
        return self._http.admin_port

    def unreachable(self) -> list[str]:
        """Servers that never answered yet, or whose latest reports failed repeatedly."""
        machine = self.reporter.machine
        return sorted(a for a in machine.assignment.servers if not machine.health.of(a).ok)

    @web.middleware
    async def _healthcheck(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/healthcheck" or not self.health.serving():
            return await handler(request)
        away = self.unreachable()
        if not away:
            return web.Response(text="OK")
        return web.Response(
            text=f"DEGRADED deciding locally, servers not answering: {' '.join(away)}\n",
            headers={DEGRADED_HEADER: "servers-unreachable"},
        )

    async def start(self) -> None:
        """Bind the ports (0 picks a free one), start serving and reporting."""
        listeners = self.settings.listeners
        address = f"{listeners.host}:{listeners.grpc_port}"
        self.grpc_port = bind_grpc(self._grpc, address, self.settings.tls.grpc())
        await self._grpc.start()
        if listeners.grpc_uds:
            await self._uds.start(listeners.grpc_uds)
        await self._http.start()
        self.http_port = self._http.port
        await self.health.config_loaded()

    async def stop(self, grace: float) -> None:
        """Stop answering, then send the last counts."""
        await self.health.shutting_down()
        await self._uds.stop(grace)
        await self._grpc.stop(grace)
        await self._http.cleanup()
        await asyncio.to_thread(self.reporter.close)


async def run(settings: ServerSettings, options: SidecarOptions) -> int:
    """Serve until SIGTERM or SIGINT; reload the config on SIGHUP. Returns the exit code."""
    signature = file_signature(config_path(settings))  # before the first load, as the server
    try:
        sidecar = Sidecar(settings, options)
    except (RatekeeperError, ValueError) as exc:  # a bad config or server address
        log.error("cannot start: %s", exc)
        return 2
    try:
        await sidecar.start()
    except (OSError, RuntimeError, RatekeeperError) as exc:  # taken port, unreadable TLS file
        log.error("cannot start: cannot listen: %s", exc)
        await sidecar.stop(0)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    policy = settings.policy
    watcher = ConfigWatcher(
        config_path(settings), policy_loader(settings), sidecar.policy, sidecar.metrics,
        policy.reload_interval_s, signature,
    )  # fmt: skip
    loop.add_signal_handler(signal.SIGHUP, watcher.reload_soon)
    chores = asyncio.create_task(_refresh(sidecar, watcher if policy.reload_interval_s else None))
    # As the server does: start-up's long-lived objects frozen out of every full collection,
    # which otherwise walks them all while Envoy's calls wait (its p99 and max).
    settle_gc()
    sidecar.metrics.gc_pauses.watch()  # ratekeeper_gc_pause_seconds, as the server's
    # Decisions run on the loop, reports in their thread: when a call arrives while a report
    # is being built, the loop gets the interpreter back within this, not Python's 5 ms.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    listeners = settings.listeners
    uds = f" grpc=unix:{listeners.grpc_uds}" if listeners.grpc_uds else ""
    security = security_for_logs(settings, sidecar.admin_port, sidecar.auth_token)
    log.info(
        "ratekeeper sidecar ready grpc=%s:%d%s http=%s:%d config=%s servers=%s%s",
        listeners.host, sidecar.grpc_port, uds, listeners.host, sidecar.http_port,
        config_path(settings), ",".join(options.servers), security,
    )  # fmt: skip
    await stop.wait()
    chores.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await chores
    await sidecar.stop(listeners.shutdown_grace_s)
    sidecar.metrics.gc_pauses.unwatch()
    return 0


async def _refresh(sidecar: Sidecar, watcher: ConfigWatcher | None) -> None:
    """Reload on file change and keep gRPC health current, until cancelled."""
    tasks = [asyncio.create_task(watcher.run())] if watcher else []
    try:
        while True:
            await asyncio.sleep(1.0)
            await sidecar.health.refresh()
    finally:
        for task in tasks:
            task.cancel()


def servers_of(text: Sequence[str]) -> tuple[str, ...]:
    """``--server`` values, each possibly comma separated."""
    return tuple(s.strip() for value in text for s in value.split(",") if s.strip())
