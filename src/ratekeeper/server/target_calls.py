"""The slicelet's calls to its target, written once: the heartbeat's wire form, its timing, and
calls that survive the target changing under them.

When heartbeats move to another target (:class:`~ratekeeper.server.slicelet.Slicelet` tries
the next after a failure), the old channel is closed after its calls had their
timeout; a call still open then (a held Watch) is cancelled by gRPC, which an awaiting
coroutine sees as its own cancellation. :func:`outliving_swaps` turns that into
:class:`ChannelSwapped`, a ``grpc.RpcError`` callers retry, so neither the watch loop nor a
relayed call in a servicer dies of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from ratekeeper.assigner.wire import state_to_wire
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.assignment import generation_to_wire, high_to_wire
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.server.membership import Beat, MembershipTiming
from ratekeeper.server.settings import ClusterSettings

__all__ = ["RELAY_HOPS", "ChannelSwapped", "beat_to_wire", "ns", "outliving_swaps", "timing"]

Reply = TypeVar("Reply")

#: Call metadata counting how many members a heartbeat was relayed through.
RELAY_HOPS = "x-ratekeeper-relay-hops"


class ChannelSwapped(grpc.RpcError):
    """A call cut short because heartbeats moved to another target and its channel closed."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "cut short: heartbeats moved to another target"


async def outliving_swaps(call: Awaitable[Reply]) -> Reply:
    """``await call``, with the cancellation a closing channel inflicts on its calls raised as
    :class:`ChannelSwapped` (a ``grpc.RpcError``), so callers retry instead of dying; the
    cancellation of the awaiting task itself still propagates."""
    try:
        return await call
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise ChannelSwapped() from None


def ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


def timing(settings: ClusterSettings) -> MembershipTiming:
    """The machine's timing from the cluster settings."""
    return MembershipTiming(
        interval_ns=ns(settings.heartbeat_interval_s),
        retry_initial_ns=ns(settings.retry_initial_s),
        retry_max_ns=ns(settings.retry_max_s),
    )


def beat_to_wire(beat: Beat, address: str, incarnation_id: str) -> pb.HeartbeatRequest:
    """The wire form of a heartbeat."""
    request = pb.HeartbeatRequest(
        address=address,
        state=state_to_wire(beat.state),
        incarnation_id=incarnation_id,
        load=[
            *(
                pb.SliceLoad(low=p.low, high=high_to_wire(p.high), load=rate)
                for p, rate in beat.load
            ),
            *(
                pb.SliceLoad(low=p.low, high=high_to_wire(p.high), load=rate, elsewhere=True)
                for p, rate in beat.elsewhere
            ),
        ],
    )
    if beat.known is not None:
        request.known.CopyFrom(generation_to_wire(beat.known))
    return request
