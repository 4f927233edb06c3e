"""Securing a gRPC listener: bound with TLS or mTLS, and the optional shared token checked.

Both the server (``ratekeeper serve``, :mod:`ratekeeper.server.security`) and the standalone
assigner (``ratekeeper assigner``) secure their listeners here, so a TLS-only listener refuses a
plaintext client the same way everywhere (its handshake fails: UNAVAILABLE), and a call to a
guarded method without ``authorization: Bearer <token>`` is answered UNAUTHENTICATED.

Blocking: :func:`bind_grpc` reads the PEM files (raises
:class:`~ratekeeper.transport.tls.TlsError` naming an unreadable one) and binds at once;
:class:`TokenInterceptor` is used from the server's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
import grpc.aio

from ratekeeper.transport.tls import AUTHORIZATION, ListenerTls, token_matches

__all__ = ["TokenInterceptor", "bind_grpc", "connection_options"]

_Interceptor: Any = grpc.aio.ServerInterceptor


def connection_options(
    *,
    handshake_timeout_s: float = 10.0,
    keepalive_time_s: float = 120.0,
    keepalive_timeout_s: float = 20.0,
    max_idle_s: float = 300.0,
    max_age_s: float = 0.0,
    max_age_grace_s: float = 0.0,
) -> list[tuple[str, int]]:
    """A gRPC server's channel arguments closing what only holds a socket: a connection that
    has not handshaken within ``handshake_timeout_s``, one not answering pings
    (``keepalive_*``), one without a call for ``max_idle_s`` (GOAWAY; 0: never), and, with
    ``max_age_s``, any after that age (plus the grace for calls under way). Without
    SO_REUSEPORT, a second server on the same port fails to start instead of silently sharing
    the port (and splitting the counters) with the first."""
    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.server_handshake_timeout_ms", int(handshake_timeout_s * 1000)),
        ("grpc.keepalive_time_ms", int(keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout_s * 1000)),
    ]
    if max_idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", int(max_idle_s * 1000)))
    if max_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(max_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_age_grace_s * 1000)),
        ]
    return options


def bind_grpc(server: grpc.aio.Server, address: str, tls: ListenerTls | None) -> int:
    """Bind ``address`` (``host:port``) with TLS if ``tls`` (mTLS if it names a client CA),
    plaintext otherwise; the port bound (0 if grpc could not bind it)."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.grpc_credentials())


class TokenInterceptor(_Interceptor):  # type: ignore[misc]
    """Refuses calls to ``methods`` (full names, ``/package.Service/Method``) that do not carry
    the token (UNAUTHENTICATED); other methods pass untouched."""

    def __init__(self, token: str, methods: Collection[str]) -> None:
        self._token = token
        self._methods = frozenset(methods)
        self._refuse = grpc.unary_unary_rpc_method_handler(_unauthenticated)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if details.method in self._methods:
            metadata: Any = details.invocation_metadata or ()
            value = next((v for k, v in metadata if k == AUTHORIZATION), None)
            if not token_matches(value, self._token):
                return self._refuse
        return await continuation(details)


async def _unauthenticated(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong authorization token")
