"""How a server's listeners are set up: gRPC channel arguments, the HTTP listeners (the main
port, and the admin port when ``--admin-listen`` moves ``/metrics`` and ``/rlconfig`` there), and
the report listener (``--report-port``).

The report listener serves ``Report`` and ``ShouldRateLimit`` over the server's own sans-IO
HTTP/2 (:mod:`ratekeeper.transport.h2`) instead of grpc.aio, whose per-call machinery (the C
core's poller handing each call to the loop and back) costs several times the report logic
itself (docs/benchmarks.md, fan-in). It keeps the gRPC port's contract: the same TLS (ALPN
``h2``; under mTLS a report's client id bound to the certificate), the token on Report, the
idle and handshake bounds, gRPC's 4 MiB message limit, the same refusals; the streaming
services stay on the gRPC port. Clients learn its port from any answer
(``ReportResponse.report_port``) and report there.

Both close idle and slow connections (issue 16 item 8c) and take TLS and the token from the
settings (:mod:`ratekeeper.server.security`). The sidecar's listeners are set up by the same
two, so it has the same idle timeouts, TLS and admin port.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from aiohttp import web

from ratekeeper.proto import report
from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.protocol.stats import StatsSink
from ratekeeper.server.http import ADMIN_PATHS, PUBLIC_PATHS, HttpEndpoints, build_app
from ratekeeper.server.refusal import refusal
from ratekeeper.server.report_servicer import ReportServicer
from ratekeeper.server.rls_servicer import SERVICE_NAME
from ratekeeper.server.security import http_ssl, token_middleware
from ratekeeper.server.settings import ListenerSettings, ServerSettings
from ratekeeper.transport.h2.serving import GrpcError, H2Server, Limits, Method
from ratekeeper.transport.listening import connection_options

__all__ = [
    "GRPC_MAX_MESSAGE",
    "HTTP_BACKLOG",
    "HttpListeners",
    "ReportListener",
    "grpc_options",
    "security_for_logs",
]

#: Connections the kernel queues for the HTTP listener before accepting (aiohttp's default is
#: 128). A connection left in a full queue is never accepted, so never timed out: a client that
#: only holds sockets would sit there until the kernel gives up.
HTTP_BACKLOG = 1024
#: gRPC's default receive limit, which the gRPC port keeps: the report listener's too.
GRPC_MAX_MESSAGE = 4 << 20
REPORT_PATH = f"/{report.SERVICE}/Report".encode()
RLS_PATH = f"/{SERVICE_NAME}/ShouldRateLimit".encode()


def grpc_options(settings: ListenerSettings) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments (:func:`~ratekeeper.transport.listening.
    connection_options` from the settings). Envoy holds one HTTP/2 connection per upstream host
    for as long as it lives; aging connections out (``--grpc-max-connection-age``) lets a
    replica added later (or restarted) receive calls again."""
    return connection_options(
        handshake_timeout_s=settings.grpc_handshake_timeout_s,
        keepalive_time_s=settings.grpc_keepalive_time_s,
        keepalive_timeout_s=settings.grpc_keepalive_timeout_s,
        max_idle_s=settings.grpc_max_connection_idle_s,
        max_age_s=settings.grpc_max_connection_age_s,
        max_age_grace_s=settings.grpc_max_connection_age_grace_s,
    )


class HttpListeners:
    """The main HTTP listener, and the admin one if configured; ports known once started.

    ``middlewares`` run on both, after the token's guard (the sidecar's health answer)."""

    def __init__(
        self,
        endpoints: HttpEndpoints,
        settings: ServerSettings,
        token: str | None,
        middlewares: Sequence[Any] = (),
    ) -> None:
        self._settings = settings
        self.port = 0
        self.admin_port = 0
        guard = (*((token_middleware(token, ADMIN_PATHS),) if token else ()), *middlewares)
        self._admin_at = settings.admin.host_port
        moved = self._admin_at is not None
        public = build_app(endpoints, paths=PUBLIC_PATHS if moved else None, middlewares=guard)
        self._main = self._runner(public)
        self._admin = None
        if moved:
            paths = ADMIN_PATHS | {"/healthcheck"}
            self._admin = self._runner(build_app(endpoints, paths=paths, middlewares=guard))

    def _runner(self, app: web.Application) -> web.AppRunner:
        listeners = self._settings.listeners
        return web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=listeners.shutdown_grace_s,
            keepalive_timeout=listeners.http_idle_timeout_s,
        )

    async def start(self) -> None:
        """Bind (port 0 picks one) and serve."""
        listeners = self._settings.listeners
        context = http_ssl(self._settings.tls.http())
        await self._main.setup()
        site = web.TCPSite(
            self._main, listeners.host, listeners.http_port, backlog=HTTP_BACKLOG,
            ssl_context=context,
        )  # fmt: skip
        await site.start()
        self.port = self._main.addresses[0][1]
        if self._admin is not None and self._admin_at is not None:
            await self._admin.setup()
            host, port = self._admin_at
            admin = web.TCPSite(self._admin, host, port, backlog=HTTP_BACKLOG, ssl_context=context)
            await admin.start()
            self.admin_port = self._admin.addresses[0][1]

    async def cleanup(self) -> None:
        """Stop serving, letting in-flight requests finish within the shutdown grace."""
        await self._main.cleanup()
        if self._admin is not None:
            await self._admin.cleanup()


class ReportListener:
    """``Report`` and ``ShouldRateLimit`` on ``--report-port`` (see the module docstring)."""

    def __init__(
        self,
        reports: ReportServicer,
        decider: RlsDecider,
        stats: StatsSink,
        clock: Callable[[], int],
        settings: ServerSettings,
        token: str | None,
    ) -> None:
        self._settings = settings
        self._reports = reports
        rls = should_rate_limit(decider, stats, clock)
        self._methods: dict[bytes, Method] = {REPORT_PATH: reports.report_message, RLS_PATH: rls}
        listeners, tls = settings.listeners, settings.tls.grpc()
        self._limits = Limits(
            max_message=GRPC_MAX_MESSAGE,
            token=token,
            protected=(REPORT_PATH,),
            idle_timeout_s=listeners.grpc_max_connection_idle_s,
            handshake_timeout_s=listeners.grpc_handshake_timeout_s,
            per_peer=self._for_peer if tls is not None and tls.client_ca else None,
        )
        self._server = H2Server(self._methods, self._limits)
        self.port = 0

    def _for_peer(self, name: str) -> Mapping[bytes, Method]:
        return {**self._methods, REPORT_PATH: partial(self._reports.report_message, peer=name)}

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._server.connections

    async def start(self) -> int:
        """Bind ``--report-port`` (0 picks one) and serve; the port bound, also announced in
        every Report answer from now on."""
        tls = self._settings.tls.grpc()
        context = None if tls is None else tls.ssl_context()
        listeners = self._settings.listeners
        self.port = await self._server.start_tcp(listeners.host, listeners.report_port, context)
        self._reports.report_port = self.port
        return self.port

    async def stop(self, grace: float) -> None:
        """GOAWAY to every connection, calls in flight get ``grace`` seconds, then closed."""
        self._reports.report_port = 0
        await self._server.stop(grace)


def should_rate_limit(
    decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
) -> Method:
    """``ShouldRateLimit`` on ``decider`` as the gRPC port's servicer answers it (the same
    timer, the same refusals): a member forwards what it does not own."""
    answer, latency, perf = decider.answer, stats.timer("ShouldRateLimit"), time.perf_counter

    async def call(request: bytes) -> bytes:
        start = perf()
        try:
            answered = await answer(request, clock())
        except Exception as exc:
            code, message = refusal(exc, stats, "ShouldRateLimit")
            latency.observe(perf() - start)
            raise GrpcError(code.value[0], message) from exc
        latency.observe(perf() - start)
        return answered

    return call


def security_for_logs(settings: ServerSettings, admin_port: int, token: str | None) -> str:
    """`` tls=grpc,http admin=HOST:PORT auth=token`` as far as each is on (never a secret)."""
    tls = [
        name for name, on in (("grpc", settings.tls.grpc()), ("http", settings.tls.http())) if on
    ]
    parts = [f"tls={','.join(tls)}"] if tls else []
    admin = settings.admin.host_port
    if admin is not None:
        parts.append(f"admin={admin[0]}:{admin_port}")
    if token:
        parts.append("auth=token")
    return "".join(" " + part for part in parts)
