"""The client's wire edge: a server's ``ReportResponse`` read into typed instructions.

Everything past this module works on :class:`~ratekeeper.core.instructions.Instruction`; only
here is ``pb.KeyInstruction`` read. A server's limits that this client cannot read (a newer unit,
an out-of-range amount) are dropped, so a server we cannot understand does not get to change the
local limiter; the rest of its instruction still applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import Limit
from ratekeeper.errors import LimitParseError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import spec_to_limit

__all__ = [
    "MAX_HOT_KEYS",
    "hot_keys_from_wire",
    "instruction_from_wire",
    "instructions_from_wire",
    "known_instructions_from_wire",
]

#: Most hot keys read from one answer (a server sends far fewer; this bounds a broken one).
MAX_HOT_KEYS = 4096


def instruction_from_wire(wire: pb.KeyInstruction) -> Instruction:
    """One key's instruction; an unset ``admit_rate`` is unbounded."""
    rate = wire.admit_rate if wire.HasField("admit_rate") else UNBOUNDED
    limits: tuple[Limit, ...] = ()
    specs = wire.limits
    if specs:
        try:
            limits = tuple([spec_to_limit(spec) for spec in specs])
        except LimitParseError:
            limits = ()
    return Instruction(wire.reject_for_ns, rate, wire.valid_for_ns, limits)


def instructions_from_wire(response: pb.ReportResponse) -> list[Instruction]:
    """The instructions of ``response``, in request order."""
    return [instruction_from_wire(wire) for wire in response.instructions]


def known_instructions_from_wire(
    response: pb.ReportResponse, ids: Sequence[int], last: Mapping[int, Instruction]
) -> list[Instruction | None]:
    """The instruction of each known key ``ids`` (the request's ``known_ids``), aligned: the
    one ``response`` sends, else the rate and limits of ``last[id]`` with no rejection period
    for the answer's ``valid_for_ns`` (``None``: no last instruction to keep)."""
    valid_for = response.valid_for_ns
    out: list[Instruction | None] = []
    for key_id in ids:
        before = last.get(key_id)
        out.append(
            None if before is None else Instruction(0, before.admit_rate, valid_for, before.limits)
        )
    n = len(ids)
    for index, wire in zip(response.changed, response.changed_instructions, strict=False):
        if index < n:
            out[index] = instruction_from_wire(wire)
    return out


def hot_keys_from_wire(response: pb.ReportResponse) -> list[tuple[int, int]]:
    """The keys ``response`` says are rejected for every client: (key hash, ns left)."""
    hot = response.hot
    if not hot:
        return []
    return [(k.key_hash, k.reject_for_ns) for k in hot[:MAX_HOT_KEYS] if k.reject_for_ns]
