"""The methods the sidecar's unix socket serves (:class:`~ratekeeper.transport.h2.serving.
UdsServer`).

``ShouldRateLimit`` with the semantics and metrics of the gRPC servicer
(:class:`~ratekeeper.server.rls_servicer.RlsServicer`: the same decider, the same latency timer,
the same refusals), and ``grpc.health.v1.Health/Check`` answering as the TCP listener's health
service does (``""`` and ``"ratelimit"``: SERVING or NOT_SERVING; any other name: NOT_FOUND).
Health ``Watch`` is served on the TCP listener only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from grpc_health.v1 import health_pb2

from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.protocol.stats import StatsSink
from ratekeeper.server.health import GRPC_SERVICE_NAMES, ServingHealth
from ratekeeper.server.refusal import refusal
from ratekeeper.server.rls_servicer import SERVICE_NAME
from ratekeeper.transport.h2.serving import GrpcError, Method

__all__ = ["HEALTH_CHECK", "SHOULD_RATE_LIMIT", "health_check", "should_rate_limit"]

_CALL = "ShouldRateLimit"
#: The ``:path`` of each method.
SHOULD_RATE_LIMIT = f"/{SERVICE_NAME}/{_CALL}".encode()
HEALTH_CHECK = b"/grpc.health.v1.Health/Check"
_NOT_FOUND = 5
_ANSWERS: dict[bool, bytes] = {
    serving: health_pb2.HealthCheckResponse(status=status).SerializeToString()
    for serving, status in (
        (True, health_pb2.HealthCheckResponse.SERVING),
        (False, health_pb2.HealthCheckResponse.NOT_SERVING),
    )
}


def should_rate_limit(
    decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
) -> Method:
    """``ShouldRateLimit`` on ``decider``, decided at ``clock``'s time."""
    answer, latency, perf = decider.answer, stats.timer(_CALL), time.perf_counter

    async def call(request: bytes) -> bytes:
        start = perf()
        try:
            answered = await answer(request, clock())
        except Exception as exc:
            code, message = refusal(exc, stats, _CALL)
            latency.observe(perf() - start)
            raise GrpcError(code.value[0], message) from exc
        latency.observe(perf() - start)
        return answered

    return call


def health_check(health: ServingHealth) -> Method:
    """``Health/Check`` from ``health``'s current answer."""

    async def call(request: bytes) -> bytes:
        try:
            service = health_pb2.HealthCheckRequest.FromString(request).service
        except Exception as exc:  # a malformed request: protobuf's DecodeError
            raise GrpcError(13, "cannot parse HealthCheckRequest") from exc
        if service not in GRPC_SERVICE_NAMES:
            raise GrpcError(_NOT_FOUND, "unknown service")
        return _ANSWERS[health.serving()]

    return call
