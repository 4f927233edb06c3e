"""Opening gRPC channels: one function per flavour (blocking, asyncio), the same options for both.

Blocking: opening a channel never blocks (gRPC connects lazily). Thread safety: a channel may be
shared by threads (blocking) or used from one event loop (asyncio). Errors: none at open; calls
fail with ``grpc.RpcError`` when the peer cannot be reached.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import grpc.aio

__all__ = ["ChannelOption", "open_aio_channel", "open_channel"]

#: A gRPC channel argument, ``(name, value)``.
ChannelOption = tuple[str, int | str]


def open_channel(address: str, options: Sequence[ChannelOption] = ()) -> grpc.Channel:
    """A blocking channel to ``address`` (``host:port`` or ``unix:PATH``)."""
    return grpc.insecure_channel(address, options=list(options))


def open_aio_channel(address: str, options: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
    """An asyncio channel to ``address``; use it from the loop that opened it."""
    return grpc.aio.insecure_channel(address, options=list(options))
