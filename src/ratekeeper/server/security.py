"""A server's transport security: TLS on its listeners and the optional shared token.

* **TLS.** :func:`~ratekeeper.transport.listening.bind_grpc` (shared with the standalone
  assigner) binds the gRPC TCP listener with TLS when the settings name a certificate (mTLS when
  they name a client CA as well), plaintext otherwise; a TLS-only listener refuses plaintext
  clients (their handshake fails: UNAVAILABLE). The unix socket (``--grpc-uds``, for a local
  Envoy) is plaintext: only local processes reach it, and file permissions guard it.
  :func:`http_ssl` is the HTTP listeners' context.
* **Client identity.** Under mTLS a report's client id is bound to the certificate it came
  with (:func:`bound_to_peer`: ``<certificate CN>/<client id>``), so a client holding another
  certificate cannot spoof a victim's id (its report numbers, demand and store budget).
* **Token.** With ``--auth-token-file``, the transport's
  :class:`~ratekeeper.transport.listening.TokenInterceptor` refuses :data:`PROTECTED_METHODS`
  (Report, the cluster's Heartbeat, Watch and Status, and the hand-off's Transfer) without
  ``authorization: Bearer <token>`` metadata (UNAUTHENTICATED), and :func:`token_middleware`
  refuses the admin HTTP paths without the same header (401). Envoy's RLS calls, health and
  ``/json`` stay open: Envoy cannot send a token on the RLS call, and load balancers probe
  health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web

from ratekeeper.proto import cluster, handoff, report
from ratekeeper.server.security_settings import ListenerTlsSettings
from ratekeeper.transport.channels import AioOpener, aio_opener
from ratekeeper.transport.listening import TokenInterceptor, bind_grpc
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

#: gRPC methods that require the token when one is configured: the reports, and every cluster
#: call (a member joins, watches, relays and hands counters off with the token; Status is
#: an admin call). Envoy's RLS calls and health stay open.
PROTECTED_METHODS: frozenset[str] = frozenset(
    {
        f"/{report.SERVICE}/Report",
        *(f"/{cluster.SERVICE}/{name}" for name in ("Heartbeat", "Watch", "Status")),
        f"/{handoff.SERVICE}/Transfer",
    }
)


def peer_channels(settings: ListenerTlsSettings, token: str | None) -> AioOpener:
    """How a member opens its channels to other members and the assigner: TLS as
    :meth:`ListenerTlsSettings.peer` says, the token on every call. The slicelet, hand-off and
    forwarding take it as their channel opener: ``(target, options) -> channel``."""
    return aio_opener(settings.peer(), token)


def bound_to_peer(request: Any, context: Any) -> Any:
    """``request`` (a ``ReportRequest``) with its client id prefixed by the peer certificate's
    common name when the call came over mTLS; unchanged otherwise."""
    names = context.auth_context().get("x509_common_name")
    if names:
        name = names[0].decode("utf-8", "replace")
        request.client_id = f"{name}/{request.client_id}"
    return request


def http_ssl(tls: ListenerTls | None) -> Any:
    """The HTTP listener's ``ssl.SSLContext``, or ``None`` for plaintext."""
    return None if tls is None else tls.ssl_context()


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
