"""Typed boundary to the generated ``ratekeeper.v1.AssignerService`` code.

As for the report service (:mod:`ratekeeper.proto.report`), no ``*_pb2_grpc`` module: the
callables and the server handler are made here from the message types
(:mod:`ratekeeper.proto.rpc`), typed. The assigner
serves all three methods; every member serves them too (Watch and Status from the assignment it
holds, Heartbeat relayed to the assigner), through the same :func:`assigner_handler`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import grpc
import grpc.aio

from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.proto.rpc import decoding, unary_call

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
        self.heartbeat = unary_call(
            channel, _method("Heartbeat"), pb.HeartbeatRequest, pb.HeartbeatResponse
        )
        self.watch = unary_call(channel, _method("Watch"), pb.WatchRequest, pb.WatchResponse)
        self.status = unary_call(channel, _method("Status"), pb.StatusRequest, pb.StatusResponse)


class AssignerCallsAio:
    """The three methods on an asyncio channel (use from the loop that opened it)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.heartbeat = unary_call(
            channel, _method("Heartbeat"), pb.HeartbeatRequest, pb.HeartbeatResponse
        )
        self.watch = unary_call(channel, _method("Watch"), pb.WatchRequest, pb.WatchResponse)
        self.status = unary_call(channel, _method("Status"), pb.StatusRequest, pb.StatusResponse)


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
            "Heartbeat": decoding(pb.HeartbeatRequest, pb.HeartbeatResponse, heartbeat),
            "Watch": decoding(pb.WatchRequest, pb.WatchResponse, watch),
            "Status": decoding(pb.StatusRequest, pb.StatusResponse, status),
        },
    )


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"
