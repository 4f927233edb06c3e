"""A server's transport security: TLS on its listeners and the optional shared token.

* **TLS.** :func:`bind_grpc` binds the gRPC TCP listener with TLS when the settings name a
  certificate (mTLS when they name a client CA as well), plaintext otherwise; a TLS-only listener
  refuses plaintext clients (their handshake fails: UNAVAILABLE). The unix socket
  (``--grpc-uds``, for a local Envoy) is plaintext: only local processes reach it, and file
  permissions guard it. :func:`http_ssl` is the HTTP listeners' context.
* **Client identity.** Under mTLS a report's client id is bound to the certificate it came
  with (:func:`bound_to_peer`: ``<certificate CN>/<client id>``), so a client holding another
  certificate cannot spoof a victim's id (its report numbers, demand and store budget).
* **Token.** With ``--auth-token-file``, :class:`TokenInterceptor` refuses
  :data:`PROTECTED_METHODS` (Report, Watch) without ``authorization: Bearer <token>`` metadata
  (UNAUTHENTICATED), and :func:`token_middleware` refuses the admin HTTP paths without the same
  header (401). Envoy's RLS calls, health and ``/json`` stay open: Envoy cannot send a token on
  the RLS call, and load balancers probe health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import grpc
import grpc.aio
from aiohttp import web

from ratekeeper.proto import cluster, report
from ratekeeper.server.security_settings import ListenerTlsSettings
from ratekeeper.transport.channels import ChannelOption, open_aio_channel
from ratekeeper.transport.tls import AUTHORIZATION, ListenerTls, read_token, token_matches

__all__ = [
    "PROTECTED_METHODS",
    "TokenInterceptor",
    "bind_grpc",
    "bound_to_peer",
    "http_ssl",
    "peer_channels",
    "read_token",
    "token_middleware",
]

#: gRPC methods that require the token when one is configured.
PROTECTED_METHODS: frozenset[str] = frozenset(
    {f"/{report.SERVICE}/Report", f"/{cluster.SERVICE}/Watch"}
)

_Interceptor: Any = grpc.aio.ServerInterceptor


def peer_channels(
    settings: ListenerTlsSettings, token: str | None
) -> Callable[[str, Sequence[ChannelOption]], grpc.aio.Channel]:
    """How a member opens its channels to other members and the assigner: TLS as
    :meth:`ListenerTlsSettings.peer` says, the token on every call. The slicelet, hand-off and
    forwarding take it as their channel opener: ``(target, options) -> channel``."""
    tls = settings.peer()

    def connect(target: str, options: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
        return open_aio_channel(target, options, tls=tls, token=token)

    return connect


def bound_to_peer(request: Any, context: Any) -> Any:
    """``request`` (a ``ReportRequest``) with its client id prefixed by the peer certificate's
    common name when the call came over mTLS; unchanged otherwise."""
    names = context.auth_context().get("x509_common_name")
    if names:
        name = names[0].decode("utf-8", "replace")
        request.client_id = f"{name}/{request.client_id}"
    return request


def bind_grpc(server: grpc.aio.Server, address: str, tls: ListenerTls | None) -> int:
    """Bind ``address`` (``host:port``) with TLS if ``tls``; the port bound."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.grpc_credentials())


def http_ssl(tls: ListenerTls | None) -> Any:
    """The HTTP listener's ``ssl.SSLContext``, or ``None`` for plaintext."""
    return None if tls is None else tls.ssl_context()


class TokenInterceptor(_Interceptor):  # type: ignore[misc]
    """Refuses :data:`PROTECTED_METHODS` calls that do not carry the token (UNAUTHENTICATED)."""

    def __init__(self, token: str, methods: Collection[str] = PROTECTED_METHODS) -> None:
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


def token_middleware(token: str, paths: Collection[str]) -> Any:
    """aiohttp middleware answering 401 on ``paths`` without ``Authorization: Bearer <token>``."""
    guarded = frozenset(paths)

    @web.middleware
    async def require_token(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in guarded and not token_matches(request.headers.get(AUTHORIZATION), token):
            return web.Response(
                status=401,
                text="missing or wrong authorization token\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return require_token
