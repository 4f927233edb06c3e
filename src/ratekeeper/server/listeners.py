"""How a server's listeners are set up: gRPC channel arguments, and the HTTP listeners (the main
port, and the admin port when ``--admin-listen`` moves ``/metrics`` and ``/rlconfig`` there).

Both close idle and slow connections (issue 16 item 8c) and take TLS and the token from the
settings (:mod:`ratekeeper.server.security`). The sidecar's listeners are set up by the same
two, so it has the same idle timeouts, TLS and admin port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ratekeeper.server.http import ADMIN_PATHS, PUBLIC_PATHS, HttpEndpoints, build_app
from ratekeeper.server.security import http_ssl, token_middleware
from ratekeeper.server.settings import ListenerSettings, ServerSettings
from ratekeeper.transport.listening import connection_options

__all__ = ["HTTP_BACKLOG", "HttpListeners", "grpc_options", "security_for_logs"]

#: Connections the kernel queues for the HTTP listener before accepting (aiohttp's default is
#: 128). A connection left in a full queue is never accepted, so never timed out: a client that
#: only holds sockets would sit there until the kernel gives up.
HTTP_BACKLOG = 1024


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
