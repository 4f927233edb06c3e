"""Cluster members as the assigner knows them: the state each reports and its heartbeat.

A member is named by its advertised gRPC address (what clients dial); its ``incarnation_id`` is
unique per process start, so a member restarted at the same address is told apart from the one
before. States move along :data:`TRANSITIONS`; a heartbeat asking for any other move keeps the
state it has (a draining member is never put back to work by a late or confused heartbeat).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ratekeeper.core.slices import Generation, Slice

__all__ = ["TRANSITIONS", "Heartbeat", "LoadReport", "Member", "MemberState", "next_state"]

#: One member's load report: ``(slice, hits per second)`` pairs.
LoadReport = tuple[tuple[Slice, float], ...]


class MemberState(enum.Enum):
    """What a member says it is doing."""

    #: Started, not serving yet: it is given no slices.
    NOT_READY = "not_ready"
    #: Serving: it may own slices.
    RUNNING = "running"
    #: Draining: its slices are moved away, and it gets none.
    TERMINATING = "terminating"


#: The states a member may move to from each state (staying put is always allowed).
TRANSITIONS: dict[MemberState, frozenset[MemberState]] = {
    MemberState.NOT_READY: frozenset({MemberState.RUNNING, MemberState.TERMINATING}),
    # a server that loses its store may stop serving for a while, then come back
    MemberState.RUNNING: frozenset({MemberState.NOT_READY, MemberState.TERMINATING}),
    MemberState.TERMINATING: frozenset(),
}


def next_state(current: MemberState, reported: MemberState) -> MemberState:
    """The state a member is in after reporting ``reported`` while in ``current``."""
    return reported if reported in TRANSITIONS[current] else current


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat, as the assigner's machine takes it (the wire form is checked before)."""

    #: The member's advertised address: its name in assignments.
    address: str
    #: The state it reports.
    state: MemberState
    #: Unique per process start of the member.
    incarnation_id: str
    #: The generation it holds; ``None`` when it holds none yet.
    known: Generation | None = None
    #: The load it measured per slice (hits per second) since its previous heartbeat.
    load: LoadReport = ()


@dataclass(frozen=True, slots=True)
class Member:
    """A live member: the last heartbeat's facts and when it came."""

    #: The advertised address.
    address: str
    #: Its state (after :func:`next_state`).
    state: MemberState
    #: Which process start of the member this is.
    incarnation_id: str
    #: When its last heartbeat arrived (ns, the machine's clock).
    last_heartbeat_ns: int
    #: The generation it said it holds.
    known: Generation | None
    #: Its per-slice load from the last heartbeat.
    load: LoadReport
