"""gRPC ``envoy.service.ratelimit.v3.RateLimitService`` over :class:`RateLimitService`.

A malformed request gets ``INVALID_ARGUMENT`` with the reference service's message; anything
unexpected inside the server gets ``INTERNAL`` and is logged: no request can stop the server.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc

from ratekeeper.errors import RequestError
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.ratelimit import RateLimitService

__all__ = ["RlsServicer"]

log = logging.getLogger(__name__)


class RlsServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """``ShouldRateLimit`` on the event loop; one store call per RPC."""

    def __init__(self, service: RateLimitService, metrics: Metrics) -> None:
        self._service = service
        self._metrics = metrics
        self._latency = metrics.latency.labels("ShouldRateLimit")

    async def ShouldRateLimit(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        start = time.perf_counter()
        try:
            return await self._service.should_rate_limit(request)
        except RequestError as exc:
            self._metrics.invalid_requests.labels("ShouldRateLimit").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception:
            self._metrics.service_errors.inc()
            log.exception("ShouldRateLimit failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            self._latency.observe(time.perf_counter() - start)
        raise AssertionError("unreachable: abort raises")
