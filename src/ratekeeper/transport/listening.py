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

__all__ = ["TokenInterceptor", "bind_grpc"]

_Interceptor: Any = grpc.aio.ServerInterceptor


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
