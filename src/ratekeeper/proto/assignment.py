"""Typed boundary to the generated ``ratekeeper.v1`` assignment messages.

Assignments, diffs and generations go to and from the wire here, written once for every party
(assigner, members, clients). Reading validates: an update arrives from another process, and a
malformed one must never become an assignment that drops or doubles keys, so every check of
:func:`~ratekeeper.core.assignment_diff.update_from_plain` and
:class:`~ratekeeper.core.slices.Assignment` applies, and failures raise :class:`ValueError`.
"""

from __future__ import annotations

from ratekeeper.core.assignment_diff import (
    AssignmentDiff,
    Update,
    update_from_plain,
    update_to_plain,
)
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as pb

__all__ = [
    "assignment_from_wire",
    "assignment_to_wire",
    "generation_from_wire",
    "generation_to_wire",
    "high_from_wire",
    "high_to_wire",
    "slice_from_wire",
    "update_from_wire",
    "update_to_wire",
]


def generation_to_wire(generation: Generation) -> pb.Generation:
    """The wire form of an assignment generation."""
    return pb.Generation(incarnation=generation.incarnation, number=generation.number)


def generation_from_wire(wire: pb.Generation) -> Generation:
    """An assignment generation from its wire form."""
    return Generation(wire.incarnation, wire.number)


def high_to_wire(high: int) -> int:
    """A slice's end on the wire: 2**64 does not fit a fixed64 and travels as 0."""
    return 0 if high == HASH_SPACE else high


def high_from_wire(high: int) -> int:
    """A slice's end from the wire (0 stands for 2**64)."""
    return HASH_SPACE if high == 0 else high


def slice_from_wire(low: int, high: int) -> Slice:
    """The slice ``[low, high)`` from wire fields; :class:`ValueError` if it is empty."""
    piece = Slice(low, high_from_wire(high))
    if piece.low >= piece.high:
        raise ValueError(f"slice [{low}, {high}) is empty")
    return piece


def assignment_to_wire(assignment: Assignment) -> pb.Assignment:
    """The wire form of a whole assignment."""
    plain = update_to_plain(assignment)
    return pb.Assignment(
        generation=generation_to_wire(assignment.generation),
        servers=plain["servers"],
        starts=plain["starts"],
        owners=plain["owners"],
    )


def assignment_from_wire(wire: pb.Assignment) -> Assignment:
    """A whole assignment from the wire; :class:`ValueError` if it is malformed."""
    update = update_from_plain(
        {
            "generation": [wire.generation.incarnation, wire.generation.number],
            "servers": list(wire.servers),
            "starts": list(wire.starts),
            "owners": list(wire.owners),
        }
    )
    assert isinstance(update, Assignment)  # no "base" key: always a whole assignment
    return update


def update_to_wire(update: Update) -> pb.AssignmentUpdate:
    """The wire form of a Watch's answer: a whole assignment or a diff."""
    if isinstance(update, Assignment):
        return pb.AssignmentUpdate(whole=assignment_to_wire(update))
    servers = sorted({owner for _, owner in update.changed})
    index = {s: i for i, s in enumerate(servers)}
    return pb.AssignmentUpdate(
        diff=pb.AssignmentDiff(
            base=generation_to_wire(update.base),
            generation=generation_to_wire(update.generation),
            servers=servers,
            lows=[p.low for p, _ in update.changed],
            highs=[high_to_wire(p.high) for p, _ in update.changed],
            owners=[index[o] for _, o in update.changed],
        )
    )


def update_from_wire(wire: pb.AssignmentUpdate) -> Update | None:
    """The update ``wire`` carries (``None`` when it carries none); :class:`ValueError` if it is
    malformed."""
    kind = wire.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "whole":
        return assignment_from_wire(wire.whole)
    d = wire.diff
    if not len(d.lows) == len(d.highs) == len(d.owners):
        raise ValueError("diff: lows, highs and owners must align")
    servers = tuple(d.servers)
    changed = []
    for low, high, owner in zip(d.lows, d.highs, d.owners, strict=True):
        if owner >= len(servers):
            raise ValueError(f"diff: server index {owner} is not in servers")
        changed.append((slice_from_wire(low, high), servers[owner]))
    return AssignmentDiff(
        generation_from_wire(d.base), generation_from_wire(d.generation), tuple(changed)
    )
