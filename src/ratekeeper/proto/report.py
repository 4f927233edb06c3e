"""Typed boundary to the generated ``ratekeeper.v1.ReportService`` code.

The ``*_pb2_grpc`` module protoc writes is untyped, so clients and the server reach the RPC only
through the helpers here (typed with grpc-stubs and the generated ``.pyi``). Conversions between
:class:`~ratekeeper.core.limits.Limit` and its wire form live here too, written once for both
ends; :func:`spec_to_limit` validates, since specs arrive from untrusted clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import grpc
import grpc.aio

from ratekeeper.core.limits import UNIT_BY_SECONDS, Algorithm, Limit
from ratekeeper.core.slices import Generation
from ratekeeper.errors import LimitParseError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = [
    "SERVICE",
    "ReportCall",
    "ReportCallAio",
    "aio_report_call",
    "generation_from_wire",
    "generation_to_wire",
    "limit_to_spec",
    "report_call",
    "report_handler",
    "spec_to_limit",
]

#: Fully qualified service name, read from the generated descriptor so it is written once.
SERVICE: str = pb.DESCRIPTOR.services_by_name["ReportService"].full_name
_METHOD = f"/{SERVICE}/Report"

# String aliases: grpc's runtime classes are not subscriptable, only their stubs are generic.
ReportCall: TypeAlias = "grpc.UnaryUnaryMultiCallable[pb.ReportRequest, pb.ReportResponse]"
ReportCallAio: TypeAlias = "grpc.aio.UnaryUnaryMultiCallable[pb.ReportRequest, pb.ReportResponse]"
ReportBehaviour: TypeAlias = (
    "Callable[[pb.ReportRequest, grpc.aio.ServicerContext], Awaitable[pb.ReportResponse]]"
)

_ALGORITHM_TO_WIRE: dict[Algorithm, pb.Algorithm.ValueType] = {
    Algorithm.TOKEN_BUCKET: pb.TOKEN_BUCKET,
    Algorithm.FIXED_WINDOW: pb.FIXED_WINDOW,
    Algorithm.SLIDING_WINDOW: pb.SLIDING_WINDOW,
}
_ALGORITHM_FROM_WIRE = {wire: algo for algo, wire in _ALGORITHM_TO_WIRE.items()}
#: Bounds on client-declared limits, so a spec cannot overflow the core's integer maths.
_MAX_AMOUNT = 1 << 40
_MAX_MULTIPLIER = 1 << 20


def report_call(channel: grpc.Channel) -> ReportCall:
    """The ``Report`` method on a blocking channel."""
    return channel.unary_unary(
        _METHOD,
        request_serializer=pb.ReportRequest.SerializeToString,
        response_deserializer=pb.ReportResponse.FromString,
    )


def aio_report_call(channel: grpc.aio.Channel) -> ReportCallAio:
    """The ``Report`` method on an asyncio channel."""
    return channel.unary_unary(
        _METHOD,
        request_serializer=pb.ReportRequest.SerializeToString,
        response_deserializer=pb.ReportResponse.FromString,
    )


def report_handler(behaviour: ReportBehaviour) -> grpc.GenericRpcHandler:
    """A handler serving ``behaviour`` as ``ReportService.Report`` on a ``grpc.aio`` server."""
    method = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=pb.ReportRequest.FromString,
        response_serializer=pb.ReportResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Report": method})


def limit_to_spec(limit: Limit) -> pb.LimitSpec:
    """The wire form of ``limit``."""
    spec = pb.LimitSpec(
        amount=limit.amount,
        unit_seconds=limit.unit.value,
        multiplier=limit.multiplier,
        algorithm=_ALGORITHM_TO_WIRE[limit.algorithm],
    )
    if limit.burst is not None:
        spec.burst = limit.burst
    return spec


def spec_to_limit(spec: pb.LimitSpec) -> Limit:
    """The limit a wire spec describes; raises :class:`LimitParseError` if it is invalid."""
    unit = UNIT_BY_SECONDS.get(spec.unit_seconds)
    if unit is None:
        raise LimitParseError(f"unit_seconds {spec.unit_seconds} is not a known unit")
    algorithm = _ALGORITHM_FROM_WIRE.get(spec.algorithm)
    if algorithm is None:
        raise LimitParseError(f"unknown algorithm {spec.algorithm}")
    burst = spec.burst if spec.HasField("burst") else None
    if spec.amount > _MAX_AMOUNT or (burst or 0) > _MAX_AMOUNT:
        raise LimitParseError(f"amount or burst above {_MAX_AMOUNT}")
    if spec.multiplier > _MAX_MULTIPLIER:
        raise LimitParseError(f"multiplier above {_MAX_MULTIPLIER}")
    return Limit(spec.amount, unit, spec.multiplier or 1, burst, algorithm)


def generation_to_wire(generation: Generation) -> pb.Generation:
    """The wire form of an assignment generation."""
    return pb.Generation(incarnation=generation.incarnation, number=generation.number)


def generation_from_wire(wire: pb.Generation) -> Generation:
    """An assignment generation from its wire form."""
    return Generation(wire.incarnation, wire.number)
