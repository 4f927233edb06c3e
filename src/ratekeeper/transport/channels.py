"""Opening gRPC channels: one function per flavour (blocking, asyncio), the same options for both.

Security is decided here for every channel: ``tls`` (a :class:`~ratekeeper.transport.tls.
TlsSettings`) makes the channel TLS (mTLS with a client certificate), ``None`` plaintext; a
``token`` is sent as ``authorization: Bearer <token>`` metadata on every call (servers started
with ``--auth-token-file`` require it on Report, Watch and admin calls). Cluster channels
(assigner, hand-off, forwarding) and the sidecar's upstream go through the same two functions.

Blocking: opening a channel never blocks (gRPC connects lazily). Thread safety: a channel may be
shared by threads (blocking) or used from one event loop (asyncio). Errors: a malformed address
raises ``ValueError`` at open (:func:`~ratekeeper.transport.addresses.check_address`); calls fail
with ``grpc.RpcError`` when the peer cannot be reached (:func:`describe_error` says why in one
line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc
import grpc.aio

from ratekeeper.transport.addresses import check_address
from ratekeeper.transport.tls import AUTHORIZATION, TlsSettings, bearer

__all__ = [
    "AioOpener",
    "ChannelOption",
    "aio_opener",
    "describe_error",
    "open_aio_channel",
    "open_channel",
]

#: A gRPC channel argument, ``(name, value)``.
ChannelOption = tuple[str, int | str]
#: Opens an asyncio channel to a target with options: how a cluster process reaches its peers.
AioOpener = Callable[[str, Sequence[ChannelOption]], grpc.aio.Channel]


def open_channel(
    address: str,
    options: Sequence[ChannelOption] = (),
    *,
    tls: TlsSettings | None = None,
    token: str | None = None,
) -> grpc.Channel:
    """A blocking channel to ``address`` (``host:port`` or ``unix:PATH``); TLS with ``tls``,
    ``token`` sent on every call. Raises ``ValueError`` for a malformed address and
    :class:`~ratekeeper.transport.tls.TlsError` for an unreadable certificate file."""
    target = check_address(address)
    if tls is None:
        channel = grpc.insecure_channel(target, options=list(options))
    else:
        args = [*options, *tls.options()]
        channel = grpc.secure_channel(target, tls.credentials(), options=args)
    if token is None:
        return channel
    return grpc.intercept_channel(channel, _SyncToken(token))


def open_aio_channel(
    address: str,
    options: Sequence[ChannelOption] = (),
    *,
    tls: TlsSettings | None = None,
    token: str | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to ``address``, as :func:`open_channel`; use it from the loop that
    opened it."""
    target = check_address(address)
    interceptors: Any = None if token is None else [_AioUnaryToken(token), _AioStreamToken(token)]
    if tls is None:
        return grpc.aio.insecure_channel(target, list(options), interceptors=interceptors)
    args = [*options, *tls.options()]
    return grpc.aio.secure_channel(target, tls.credentials(), args, interceptors=interceptors)


def aio_opener(tls: TlsSettings | None, token: str | None) -> AioOpener:
    """An opener of asyncio channels all secured alike: ``tls`` and ``token`` as for
    :func:`open_aio_channel`. The cluster's channels (a member's slicelet, hand-off and
    forwarding, an elected assigner's calls to its leader) take one."""

    def connect(target: str, options: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
        return open_aio_channel(target, options, tls=tls, token=token)

    return connect


# The stubs type the interceptor bases as generics the runtime classes are not.
_SyncUnary: Any = grpc.UnaryUnaryClientInterceptor
_SyncStream: Any = grpc.UnaryStreamClientInterceptor
_AioUnary: Any = grpc.aio.UnaryUnaryClientInterceptor
_AioStream: Any = grpc.aio.UnaryStreamClientInterceptor


class _Details(NamedTuple):
    """``grpc.ClientCallDetails`` with the token added to its metadata."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _with_token(details: Any, value: str) -> _Details:
    metadata = [*(details.metadata or ()), (AUTHORIZATION, value)]
    return _Details(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
        getattr(details, "compression", None),
    )


def _aio_with_token(details: Any, value: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), (AUTHORIZATION, value))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _SyncToken(_SyncUnary, _SyncStream):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._value = bearer(token)

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(_with_token(details, self._value), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(_with_token(details, self._value), request)


class _AioBearer:
    """The token of an asyncio channel's calls. One interceptor class per call kind (below):
    ``grpc.aio`` files an interceptor under the first kind it implements only."""

    def __init__(self, token: str) -> None:
        self._value = bearer(token)

    def _signed(self, details: Any) -> grpc.aio.ClientCallDetails:
        return _aio_with_token(details, self._value)


class _AioUnaryToken(_AioBearer, _AioUnary):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._signed(details), request)


class _AioStreamToken(_AioBearer, _AioStream):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._signed(details), request)


def describe_error(error: BaseException) -> str:
    """One line saying why a call failed: the status code and details of an RPC error."""
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    if callable(code) and callable(details):
        status = code()
        name = getattr(status, "name", str(status))
        return f"{name}: {details() or 'no details'}"
    return f"{type(error).__name__}: {error}"
