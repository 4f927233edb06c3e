"""Typed boundary to the generated ``ratekeeper.v1.AssignerService`` code.

As for the report service (:mod:`ratekeeper.proto.report`), no ``*_pb2_grpc`` module: the
callables and the server handler are made here from the message types, typed. The assigner
serves all three methods; every member serves them too (Watch and Status from the assignment it
holds, Heartbeat relayed to the assigner), through the same :func:`assigner_handler`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb

__all__ = [
    "SERVICE",
    "AssignerCalls",
    "AssignerCallsAio",
    "aio_assigner_calls",
    "assigner_calls",
    "assigner_handler",
]

#: Fully qualified service name, read from the generated descriptor so it is written once.
SERVICE: str = pb.DESCRIPTOR.services_by_name["AssignerService"].full_name

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)

HeartbeatBehaviour: TypeAlias = (
    "Callable[[pb.HeartbeatRequest, grpc.aio.ServicerContext], Awaitable[pb.HeartbeatResponse]]"
)
WatchBehaviour: TypeAlias = (
    "Callable[[pb.WatchRequest, grpc.aio.ServicerContext], Awaitable[pb.WatchResponse]]"
)
StatusBehaviour: TypeAlias = (
    "Callable[[pb.StatusRequest, grpc.aio.ServicerContext], Awaitable[pb.StatusResponse]]"
)


class AssignerCalls:
    """The three methods on a blocking channel (thread-safe, as the channel is)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.heartbeat: grpc.UnaryUnaryMultiCallable[pb.HeartbeatRequest, pb.HeartbeatResponse]
        self.heartbeat = channel.unary_unary(
            _method("Heartbeat"),
            request_serializer=pb.HeartbeatRequest.SerializeToString,
            response_deserializer=pb.HeartbeatResponse.FromString,
        )
        self.watch: grpc.UnaryUnaryMultiCallable[pb.WatchRequest, pb.WatchResponse]
        self.watch = channel.unary_unary(
            _method("Watch"),
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )
        self.status: grpc.UnaryUnaryMultiCallable[pb.StatusRequest, pb.StatusResponse]
        self.status = channel.unary_unary(
            _method("Status"),
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusResponse.FromString,
        )


class AssignerCallsAio:
    """The three methods on an asyncio channel (use from the loop that opened it)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.heartbeat: grpc.aio.UnaryUnaryMultiCallable[pb.HeartbeatRequest, pb.HeartbeatResponse]
        self.heartbeat = channel.unary_unary(
            _method("Heartbeat"),
            request_serializer=pb.HeartbeatRequest.SerializeToString,
            response_deserializer=pb.HeartbeatResponse.FromString,
        )
        self.watch: grpc.aio.UnaryUnaryMultiCallable[pb.WatchRequest, pb.WatchResponse]
        self.watch = channel.unary_unary(
            _method("Watch"),
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )
        self.status: grpc.aio.UnaryUnaryMultiCallable[pb.StatusRequest, pb.StatusResponse]
        self.status = channel.unary_unary(
            _method("Status"),
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusResponse.FromString,
        )


def assigner_calls(channel: grpc.Channel) -> AssignerCalls:
    """The service's methods on a blocking channel."""
    return AssignerCalls(channel)


def aio_assigner_calls(channel: grpc.aio.Channel) -> AssignerCallsAio:
    """The service's methods on an asyncio channel."""
    return AssignerCallsAio(channel)


def assigner_handler(
    heartbeat: HeartbeatBehaviour, watch: WatchBehaviour, status: StatusBehaviour
) -> grpc.GenericRpcHandler:
    """A handler serving the three behaviours as ``AssignerService`` on a ``grpc.aio`` server.

    Requests are decoded here rather than by grpc, so bytes that are not the method's request
    are answered ``INVALID_ARGUMENT`` (grpc answers a failed deserializer ``UNKNOWN``).
    """
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Heartbeat": _decoding(pb.HeartbeatRequest, heartbeat),
            "Watch": _decoding(pb.WatchRequest, watch),
            "Status": _decoding(pb.StatusRequest, status),
        },
    )


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _decoding(
    request_type: type[Request],
    behaviour: Callable[[Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
) -> grpc.RpcMethodHandler[Any, Any]:
    async def decoded(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = request_type.FromString(data)
        except DecodeError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a {request_type.DESCRIPTOR.name}"
            )
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        decoded, response_serializer=lambda message: message.SerializeToString()
    )
