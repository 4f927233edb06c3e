"""The composition root: the one place that wires a server process together.

:func:`build` makes the process's :class:`~ratekeeper.server.components.Components` from its
settings. Extension points, one line each, beside it:

* :data:`~ratekeeper.server.stores.STORES` maps a backend URL scheme (``memory://``,
  ``redis://``) to a factory ``(url, store settings) -> Store``.
* :data:`~ratekeeper.server.services.SERVICES` lists the gRPC registrations
  ``(grpc.aio.Server, Components) -> None``.

:class:`Replica` starts and stops the listeners on the running event loop (tests use it
in-process); :func:`run` adds what a real process needs: signals, reload, graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable
from functools import partial

import grpc

from ratekeeper.config import default_config_path, load_config
from ratekeeper.core.limits import Algorithm
from ratekeeper.errors import RatekeeperError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Policy, PolicyHolder
from ratekeeper.protocol.rls import RlsDecider, RlsSettings
from ratekeeper.server import redact
from ratekeeper.server.components import Components
from ratekeeper.server.forwarding import GrpcForwarder, ViewOwners
from ratekeeper.server.health import ServingHealth
from ratekeeper.server.http import HttpEndpoints
from ratekeeper.server.listeners import (
    HttpListeners,
    ReportListener,
    grpc_options,
    security_for_logs,
)
from ratekeeper.server.member_lifecycle import MemberLifecycle, advertised, embedded_assigner
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.operator_history import OperatorTap
from ratekeeper.server.operator_page import OperatorPage
from ratekeeper.server.operator_reports import report_processor
from ratekeeper.server.reload import ConfigWatcher, config_gauge, file_signature, initial_policy
from ratekeeper.server.report_servicer import servicer_for
from ratekeeper.server.security import PROTECTED_METHODS, peer_channels
from ratekeeper.server.services import SERVICES
from ratekeeper.server.settings import AlgorithmMode, ServerSettings
from ratekeeper.server.slice_view import SliceView
from ratekeeper.server.slicelet import Slicelet
from ratekeeper.server.stores import open_store
from ratekeeper.transport.listening import TokenInterceptor, bind_grpc
from ratekeeper.transport.tls import read_token

__all__ = ["Replica", "build", "run"]

log = logging.getLogger(__name__)

#: The algorithm each mode forces on every rule (``None``: each rule's own).
_FORCED_ALGORITHM: dict[AlgorithmMode, Algorithm | None] = {
    AlgorithmMode.AS_CONFIGURED: None,
    AlgorithmMode.FIXED_WINDOW: Algorithm.FIXED_WINDOW,
}


def config_path(settings: ServerSettings) -> str:
    """The configured policy path, or the embedded default."""
    return settings.policy.path or str(default_config_path())


def policy_loader(settings: ServerSettings) -> Callable[[], Policy]:
    """Loads the policy as the settings say; raises ConfigError."""
    return partial(
        load_config,
        config_path(settings),
        merge_domains=settings.policy.merge_domains,
        algorithm=_FORCED_ALGORITHM[settings.policy.algorithm],
        bounds=settings.policy.bounds,
    )


def rls_settings(settings: ServerSettings) -> RlsSettings:
    """How RLS answers are shaped, from the answers and policy sections."""
    answers = settings.answers
    return RlsSettings(
        shadow_mode=answers.shadow_mode,
        near_limit_ratio=answers.near_limit_ratio,
        fail_closed=answers.fail_closed,
        headers=answers.headers.names,
        override_algorithm=_FORCED_ALGORITHM[settings.policy.algorithm] or Algorithm.TOKEN_BUCKET,
        quota_mode=answers.quota_mode,
        max_text=answers.max_text,
        dynamic_metadata=answers.dynamic_metadata,
    )


def build(
    settings: ServerSettings,
    clock: Callable[[], int] = time.time_ns,
    forwarder: GrpcForwarder | None = None,
) -> Components:
    """Load the config and open the store; raises ConfigError (nothing is listening yet).

    ``clock`` is the wall clock (ns since the epoch) decisions are taken at; ``forwarder``
    sends RLS descriptors owned by other cluster members to them.
    """
    m = settings.metrics
    metrics = Metrics(
        m.max_stats_keys, max_stats_domains=m.max_stats_domains, max_label_chars=m.max_label_chars
    )
    load, without = policy_loader(settings), settings.policy.serve_without_config
    policy = PolicyHolder(initial_policy(load, config_path(settings), metrics, without))
    config_gauge(metrics.registry, policy)
    store = open_store(settings)
    metrics.watch_store(store)
    token = read_token(settings.auth.token_file) if settings.auth.token_file else None
    connect = peer_channels(settings.tls, token)  # a member's cluster channels: TLS, token
    slicelet = Slicelet(settings.cluster, connect=connect) if settings.cluster.enabled else None
    if slicelet is not None:
        metrics.watch_assignment(partial(_held_generation, slicelet.view))
    gate = StoreGate(store) if slicelet is None else StoreGate(store, slicelet.view, metrics)
    if forwarder is None and slicelet is not None:
        # a member answers RLS for the whole cluster: what it does not own goes to the owner
        forwarder = GrpcForwarder(ViewOwners(slicelet.view), connect=connect)
        slicelet.listen(forwarder)  # closes the channels of owners that leave
    decider = RlsDecider(policy, gate, metrics, rls_settings(settings), forwarder)
    tap = OperatorTap() if settings.admin.host_port is not None else None  # the page's feed
    reports = report_processor(gate, lambda: policy.policy, settings.reports, metrics, tap)
    health = ServingHealth(store, policy, require_domain=settings.policy.require_domain)
    assigner = embedded_assigner(settings.cluster) if settings.cluster.assigner_embedded else None
    return Components(
        settings, policy, store, metrics, health, decider, reports, clock, slicelet, assigner,
        forwarder,
        token,
        tap,
    )  # fmt: skip


class Replica:
    """The gRPC and HTTP listeners of one process, on the running event loop."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self.grpc_port = 0
        token = components.auth_token
        self._grpc = grpc.aio.server(
            options=grpc_options(components.settings.listeners),
            interceptors=[TokenInterceptor(token, PROTECTED_METHODS)] if token else None,
        )
        c = components
        self._member = MemberLifecycle(c.slicelet, c.assigner) if c.slicelet else None
        for register in SERVICES:
            register(self._grpc, components)
        page = OperatorPage.over(c.operator, c.metrics, c.store, c.slicelet, c.clock)
        endpoints = HttpEndpoints(c.decider, c.clock, c.health, c.metrics, c.policy, page)
        self._http = HttpListeners(endpoints, c.settings, token)
        self._reports: ReportListener | None = None
        if c.settings.listeners.report_port >= 0:
            view = c.slicelet.view if c.slicelet is not None else None
            servicer = servicer_for(c.reports, c.metrics, c.clock, view)
            self._reports = ReportListener(
                servicer, c.decider, c.metrics, c.clock, c.settings, token
            )

    @property
    def report_port(self) -> int:
        """The report listener's port (0 before :meth:`start`, or without ``--report-port``)."""
        return 0 if self._reports is None else self._reports.port

    @property
    def report_connections(self) -> int:
        """Connections open to the report listener now."""
        return 0 if self._reports is None else self._reports.connections

    @property
    def http_port(self) -> int:
        """The HTTP port bound (0 before :meth:`start`)."""
        return self._http.port

    @property
    def admin_port(self) -> int:
        """The admin port bound (0 before :meth:`start`, or without ``--admin-listen``)."""
        return self._http.admin_port

    async def start(self) -> None:
        """Bind both ports (0 picks a free one) and start serving."""
        settings = self.components.settings.listeners
        tls = self.components.settings.tls
        address = f"{settings.host}:{settings.grpc_port}"
        self.grpc_port = bind_grpc(self._grpc, address, tls.grpc())
        if settings.grpc_uds:  # local only: plaintext (see server.security)
            self._grpc.add_insecure_port(f"unix:{settings.grpc_uds}")
        await self._grpc.start()
        if self._reports is not None:
            await self._reports.start()
        await self._http.start()
        await self.components.health.config_loaded()
        if self._member is not None:
            cluster = self.components.settings.cluster
            await self._member.start(advertised(cluster, settings, self.grpc_port))

    async def stop(self, grace: float) -> None:
        """NOT_SERVING, stop accepting, let in-flight calls finish within ``grace`` seconds.

        A cluster member first drains: its slices move away (and are handed off) while it
        still serves, bounded by ``cluster.drain_timeout_s``."""
        if self._member is not None:
            await self._member.leave()
        await self.components.health.shutting_down()
        if self._reports is not None:
            await asyncio.gather(self._reports.stop(grace), self._grpc.stop(grace))
        else:
            await self._grpc.stop(grace)
        if self._member is not None:
            await self._member.stop()
        await self._http.cleanup()
        if self.components.forwarder is not None:
            await self.components.forwarder.close()
        await self.components.store.close()


async def _housekeeping(server: Replica, watcher: ConfigWatcher | None) -> None:
    """Reload on file change and keep gRPC health current, until cancelled."""
    tasks = [asyncio.create_task(watcher.run())] if watcher else []
    try:
        while True:
            await asyncio.sleep(1.0)
            await server.components.health.refresh()
    finally:
        for task in tasks:
            task.cancel()


def _held_generation(view: SliceView) -> tuple[int, int] | None:
    """The generation ``view`` holds, as the metric exports it."""
    held = view.generation
    return None if held is None else (held.incarnation, held.number)


def settle_gc() -> None:
    """Tune the cyclic garbage collector for a long-running server, once it has started.

    Start-up leaves a few hundred thousand long-lived objects (gRPC, protobuf descriptors, the
    policy) that every full collection would walk again: they are collected once, then frozen
    out of later collections. Full collections are also made ten times rarer (after 100
    younger ones instead of 10): cached plans are long-lived and cycle-free, and each full
    collection walks them all (the memory store's counters are tuples it does not track; see
    docs/operations.md). Objects are still freed by reference counting as before.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


async def run(settings: ServerSettings) -> int:
    """Serve until SIGTERM or SIGINT; reload on SIGHUP. Returns the exit code."""
    # Taken before the first load, so a file changed while it is read is reloaded at once.
    signature = file_signature(config_path(settings))
    redact.install()  # before the first line that could name a backend URL
    try:
        components = build(settings)
    except RatekeeperError as exc:  # a bad config, or a store that cannot be opened
        log.error("cannot start: %s", exc)
        return 2
    if components.auth_token:
        redact.install([components.auth_token])
    server = Replica(components)
    listeners = settings.listeners
    try:
        await server.start()
    except (OSError, RuntimeError) as exc:  # a port in use: grpc raises RuntimeError
        where = listeners.host + (f" or unix:{listeners.grpc_uds}" if listeners.grpc_uds else "")
        log.error("cannot start: cannot listen on %s: %s", where, exc)
        await server.stop(0)
        return 2
    settle_gc()
    components.metrics.gc_pauses.watch()
    watcher = ConfigWatcher(
        config_path(settings),
        policy_loader(settings),
        components.policy,
        components.metrics,
        settings.policy.reload_interval_s,
        signature,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, watcher.reload_soon)
    polling = watcher if settings.policy.reload_interval_s > 0 else None
    chores = asyncio.create_task(_housekeeping(server, polling))
    uds = f" grpc=unix:{listeners.grpc_uds}" if listeners.grpc_uds else ""
    if server.report_port:
        uds += f" report={listeners.host}:{server.report_port}"
    security = security_for_logs(settings, server.admin_port, components.auth_token)
    components.health.announce(  # "ready" only once serving: a store may not answer yet
        f"grpc={listeners.host}:{server.grpc_port}{uds} http={listeners.host}:{server.http_port} "
        f"config={config_path(settings)} backend={settings.store.backend_for_logs}{security}"
    )
    await stop.wait()
    log.info("shutting down (grace %.1fs)", listeners.shutdown_grace_s)
    chores.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await chores
    await server.stop(listeners.shutdown_grace_s)
    components.metrics.gc_pauses.unwatch()
    log.info("stopped")
    return 0
