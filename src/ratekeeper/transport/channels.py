"""Opening gRPC channels: one function per flavour (blocking, asyncio), the same options for both.

Blocking: opening a channel never blocks (gRPC connects lazily). Thread safety: a channel may be
shared by threads (blocking) or used from one event loop (asyncio). Errors: a malformed address
raises ``ValueError`` at open (:func:`~ratekeeper.transport.addresses.check_address`); calls fail
with ``grpc.RpcError`` when the peer cannot be reached (:func:`describe_error` says why in one
line).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import grpc.aio

from ratekeeper.transport.addresses import check_address

__all__ = ["ChannelOption", "describe_error", "open_aio_channel", "open_channel"]

#: A gRPC channel argument, ``(name, value)``.
ChannelOption = tuple[str, int | str]


def open_channel(address: str, options: Sequence[ChannelOption] = ()) -> grpc.Channel:
    """A blocking channel to ``address`` (``host:port`` or ``unix:PATH``)."""
    return grpc.insecure_channel(check_address(address), options=list(options))


def open_aio_channel(address: str, options: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
    """An asyncio channel to ``address``; use it from the loop that opened it."""
    return grpc.aio.insecure_channel(check_address(address), options=list(options))


def describe_error(error: BaseException) -> str:
    """One line saying why a call failed: the status code and details of an RPC error."""
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    if callable(code) and callable(details):
        status = code()
        name = getattr(status, "name", str(status))
        return f"{name}: {details() or 'no details'}"
    return f"{type(error).__name__}: {error}"
