"""gRPC ``envoy.service.ratelimit.v3.RateLimitService`` over an :class:`RlsDecider`.

Registered without protobuf (de)serializers: the servicer takes the request's bytes and returns
the response's bytes (:meth:`RlsDecider.answer`), so a request seen before is never parsed
and no response object is built. A malformed request gets ``INVALID_ARGUMENT`` with the
reference service's message; anything unexpected inside the server gets ``INTERNAL`` and is
logged (``ratekeeper.server.refusal``): no request can stop the server. A cluster member's
servicer (:class:`ClusterRlsServicer`) answers a call another member forwarded (metadata
``x-ratekeeper-forwarded``) itself, and forwards the descriptors of every other call to their
owners (``ratekeeper.server.forwarding``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.protocol.stats import StatsSink
from ratekeeper.server.forwarding import is_forwarded
from ratekeeper.server.refusal import Answer, Handler, answering

__all__ = [
    "SERVICE_NAME",
    "BytesRlsServicer",
    "ClusterRlsServicer",
    "RlsServicer",
    "add_rls_servicer",
    "rls_servicer",
]

SERVICE_NAME: str = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
_CALL = "ShouldRateLimit"


class RlsServicer:
    """``ShouldRateLimit`` on the event loop, decided at ``clock``'s time; one store call per
    RPC."""

    def __init__(
        self, decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.ShouldRateLimit: Handler = answering(_CALL, stats, clock, decider.answer)


class ClusterRlsServicer(RlsServicer):
    """:class:`RlsServicer` of a cluster member: a forwarded call is answered here (never
    forwarded again); any other call's descriptors owned elsewhere go to their owners."""

    def __init__(
        self, decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
    ) -> None:
        local, forwarded = decider.answer, decider.answer_forwarded

        def pick(context: grpc.aio.ServicerContext[Any, Any]) -> Answer:
            return forwarded if is_forwarded(context.invocation_metadata()) else local

        self.ShouldRateLimit = answering(_CALL, stats, clock, local, pick=pick)


def rls_servicer(
    decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
) -> RlsServicer:
    """The servicer of ``decider``: a cluster member's if it forwards."""
    servicer = ClusterRlsServicer if decider.forwarding else RlsServicer
    return servicer(decider, stats, clock)


class BytesRlsServicer(Protocol):
    """A ``ShouldRateLimit`` that exchanges serialized messages (:class:`RlsServicer`)."""

    def ShouldRateLimit(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any], /
    ) -> Awaitable[bytes]: ...


def add_rls_servicer(servicer: BytesRlsServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as the generated ``add_RateLimitServiceServicer_to_server`` does,
    but exchanging bytes (no request deserializer, no response serializer)."""
    handlers = {_CALL: grpc.unary_unary_rpc_method_handler(servicer.ShouldRateLimit)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    # Registered methods are matched by the C core, not by a Python lookup per call (grpcio
    # 1.63+; the stubs do not declare it yet).
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
