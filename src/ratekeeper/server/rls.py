"""gRPC ``envoy.service.ratelimit.v3.RateLimitService`` over :class:`RateLimitService`.

Registered without protobuf (de)serializers: the servicer takes the request's bytes and returns
the response's bytes (:meth:`RateLimitService.answer`), so a request seen before is never parsed
and no response object is built. A malformed request gets ``INVALID_ARGUMENT`` with the
reference service's message; anything unexpected inside the server gets ``INTERNAL`` and is
logged: no request can stop the server.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import grpc
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.errors import RequestError
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.ratelimit import RateLimitService

__all__ = ["SERVICE_NAME", "BytesRlsServicer", "RlsServicer", "add_rls_servicer"]

log = logging.getLogger(__name__)

SERVICE_NAME: str = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name


class RlsServicer:
    """``ShouldRateLimit`` on the event loop; one store call per RPC."""

    def __init__(self, service: RateLimitService, metrics: Metrics) -> None:
        self._service = service
        self._metrics = metrics
        self._latency = metrics.latency.labels("ShouldRateLimit")

    async def ShouldRateLimit(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        start = time.perf_counter()
        try:
            answer = await self._service.answer(request)
        except RequestError as exc:
            self._metrics.invalid_requests.labels("ShouldRateLimit").inc()
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Exception:
            self._metrics.service_errors.inc()
            log.exception("ShouldRateLimit failed")
            code, message = grpc.StatusCode.INTERNAL, "internal error"
        else:
            self._latency.observe(time.perf_counter() - start)
            return answer
        # Timed before aborting: the caller sees the status as soon as abort sends it, and
        # a scrape right after must already count this call.
        self._latency.observe(time.perf_counter() - start)
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")


class BytesRlsServicer(Protocol):
    """A ``ShouldRateLimit`` that exchanges serialized messages (:class:`RlsServicer`)."""

    async def ShouldRateLimit(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes: ...


def add_rls_servicer(servicer: BytesRlsServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as the generated ``add_RateLimitServiceServicer_to_server`` does,
    but exchanging bytes (no request deserializer, no response serializer)."""
    handlers = {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(servicer.ShouldRateLimit)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    # Registered methods are matched by the C core, not by a Python lookup per call (grpcio
    # 1.63+; the stubs do not declare it yet).
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
