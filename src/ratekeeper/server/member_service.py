"""``ratekeeper.v1.AssignerService`` as every cluster member serves it, so one address is enough.

* **Watch** is answered from the assignment the member holds: at once when the caller is behind
  (a diff from a recent generation, else the whole), else held until the member adopts a newer
  one or the caller's wait (at most :data:`MAX_WAIT_S`) ends.
* **Heartbeat** is relayed to the member's own target (the assigner, or the member it joined
  through), so a server may join through any member. Each relay adds one to the
  :data:`~ratekeeper.server.slicelet.RELAY_HOPS` metadata; past :data:`MAX_HOPS` the call is
  refused, so members told to join each other (and no assigner) cannot relay in a ring.
* **Status** is relayed to the target too (members, states and loads live at the assigner); if
  it cannot be reached, it is answered from the held assignment alone: each owner with its slice
  count, this member with its own state, no loads.

A member that embeds the assigner serves the assigner's own service instead of this one.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from ratekeeper.assigner.wire import state_to_wire
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.assignment import assignment_to_wire, generation_from_wire, update_to_wire
from ratekeeper.proto.cluster import assigner_handler
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.server.membership import State
from ratekeeper.server.slicelet import RELAY_HOPS, Slicelet
from ratekeeper.transport.channels import describe_error

__all__ = ["MAX_HOPS", "MAX_WAIT_S", "MemberService"]

#: The longest a Watch is held, whatever it asks for.
MAX_WAIT_S = 60.0
#: Most members one heartbeat may be relayed through.
MAX_HOPS = 4
#: A held Watch answers this long before the caller's deadline, so it gets an answer, not an error.
_DEADLINE_MARGIN_S = 0.05


class MemberService:
    """The three methods over one :class:`Slicelet`; see the module docstring."""

    def __init__(self, slicelet: Slicelet) -> None:
        self._slicelet = slicelet

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The gRPC handler serving this service."""
        return assigner_handler(self.heartbeat, self.watch, self.status)

    async def heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        hops = _hops(context)
        if hops >= MAX_HOPS:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"relayed through {hops} members without reaching an assigner: does any member "
                "join the assigner itself?",
            )
        try:
            return await self._slicelet.relay(request, hops + 1)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            await context.abort(
                code or grpc.StatusCode.UNAVAILABLE,
                f"relay to {self._slicelet.target}: {describe_error(exc)}",
            )

    async def watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WatchResponse:
        known = generation_from_wire(request.known) if request.HasField("known") else None
        wait_s = min(request.wait_ns / NS_PER_SECOND, MAX_WAIT_S)
        remaining = context.time_remaining()
        if remaining is not None:
            wait_s = min(wait_s, remaining - _DEADLINE_MARGIN_S)
        update = await self._slicelet.wait_update(known, max(0.0, wait_s))
        response = pb.WatchResponse()
        if update is not None:
            response.update.CopyFrom(update_to_wire(update))
        return response

    async def status(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatusResponse:
        slicelet = self._slicelet
        try:
            return await slicelet.status()
        except grpc.RpcError:
            pass
        response = pb.StatusResponse(assigner=slicelet.target)
        held = slicelet.assignment
        if held is None:
            return response
        response.assignment.CopyFrom(assignment_to_wire(held))
        for address in sorted(held.servers):
            state = slicelet.state if address == slicelet.address else State.RUNNING
            response.members.append(
                pb.MemberStatus(
                    address=address,
                    state=state_to_wire(state),
                    slices=len(held.slices_of(address)),
                )
            )
        return response


def _hops(context: grpc.aio.ServicerContext[Any, Any]) -> int:
    for key, value in context.invocation_metadata() or ():
        if key == RELAY_HOPS:
            text = value.decode() if isinstance(value, bytes) else value
            return int(text) if text.isdigit() else MAX_HOPS
    return 0
