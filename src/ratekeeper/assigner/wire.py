"""The assigner's messages to and from the wire: heartbeats in, status out, checked at the edge.

A heartbeat comes from another process, so everything in it is checked before the machine sees
it: the address must be one a client can dial, the incarnation id must be there, the load must be
finite, non-negative, bounded and on real slices, and a member may report only so many entries.
Failures raise :class:`ValueError` with the reason, answered ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ratekeeper.assigner.members import Heartbeat, LoadReport, Member, MemberState
from ratekeeper.core.rebalance import server_loads
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import Assignment, Slice
from ratekeeper.proto.assignment import (
    assignment_to_wire,
    generation_from_wire,
    slice_from_wire,
)
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.transport.addresses import check_address

__all__ = [
    "MAX_LOAD",
    "MAX_LOAD_ENTRIES",
    "heartbeat_from_wire",
    "state_from_wire",
    "state_to_wire",
    "status_to_wire",
]

#: Load entries one heartbeat may carry (a member's slices and a few hot keys).
MAX_LOAD_ENTRIES = 4096
#: The highest load (hits per second) one entry may report: far above any real slice, and far
#: enough below the largest float that sums over thousands of entries stay finite.
MAX_LOAD = 1e12
#: Longest incarnation id accepted.
_MAX_INCARNATION_ID = 128

_STATES: dict[MemberState, pb.MemberState] = {
    MemberState.NOT_READY: pb.NOT_READY,
    MemberState.RUNNING: pb.RUNNING,
    MemberState.TERMINATING: pb.TERMINATING,
}
_FROM_WIRE: dict[int, MemberState] = {int(v): k for k, v in _STATES.items()}


def state_to_wire(state: MemberState) -> pb.MemberState:
    """The wire value of a member state."""
    return _STATES[state]


def state_from_wire(value: int) -> MemberState:
    """A member state from the wire; :class:`ValueError` for a value this version lacks."""
    try:
        return _FROM_WIRE[value]
    except KeyError:
        raise ValueError(f"unknown member state {value}") from None


def heartbeat_from_wire(request: pb.HeartbeatRequest) -> Heartbeat:
    """The heartbeat ``request`` carries, checked (see the module docstring)."""
    address = check_address(request.address)
    if not request.incarnation_id or len(request.incarnation_id) > _MAX_INCARNATION_ID:
        raise ValueError(f"incarnation_id must be 1 to {_MAX_INCARNATION_ID} characters")
    if len(request.load) > MAX_LOAD_ENTRIES:
        raise ValueError(f"at most {MAX_LOAD_ENTRIES} load entries per heartbeat")
    load: list[tuple[Slice, float]] = []
    for entry in request.load:
        if not math.isfinite(entry.load) or not 0 <= entry.load <= MAX_LOAD:
            raise ValueError(f"load {entry.load} is not a rate in [0, {MAX_LOAD:g}] hits/s")
        load.append((slice_from_wire(entry.low, entry.high), entry.load))
    return Heartbeat(
        address=address,
        state=state_from_wire(request.state),
        incarnation_id=request.incarnation_id,
        known=generation_from_wire(request.known) if request.HasField("known") else None,
        load=tuple(load),
    )


def status_to_wire(
    assignment: Assignment | None,
    members: Iterable[Member],
    reports: Iterable[LoadReport],
    now: int,
    assigner: str,
) -> pb.StatusResponse:
    """The Status answer: the assignment, each live member's state, slices and load (summed
    from ``reports``)."""
    listed = tuple(members)
    load = LoadMap.of(entry for report in reports for entry in report)
    loads = server_loads(assignment, load, [m.address for m in listed]) if assignment else {}
    running = [loads.get(m.address, 0.0) for m in listed if m.state is MemberState.RUNNING]
    mean = sum(running) / len(running) if running else 0.0
    response = pb.StatusResponse(
        assigner=assigner,
        imbalance=max(running) / mean if mean > 0 else 0.0,
        members=[
            pb.MemberStatus(
                address=m.address,
                state=state_to_wire(m.state),
                heartbeat_age_ns=max(0, now - m.last_heartbeat_ns),
                slices=len(assignment.slices_of(m.address)) if assignment else 0,
                load=loads.get(m.address, 0.0),
            )
            for m in listed
        ],
    )
    if assignment is not None:
        response.assignment.CopyFrom(assignment_to_wire(assignment))
    return response
