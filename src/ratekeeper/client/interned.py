"""Keys interned on each server: sent in full once, then as an id and two counts (issue 15).

The first report of a key to a server carries its descriptor (``st.template``) with a small
``key_id``; later ones append the id and the counts to the request's packed ``known_*`` arrays,
a few bytes a key instead of its whole descriptor. The server answers a known key only when its
instruction changed (``changed`` / ``changed_instructions``); a key it leaves out keeps the rate
and limits of the last instruction this client got for it, with no rejection period, for the
answer's ``valid_for_ns``. A server that does not know an id (it restarted) says so
(``unknown_ids``): the key's counts go back to its state and it is sent in full next cycle.

Keys are named by their 64-bit hash here, so a retired state and its successor share an id
(they are the same key to the server). Bounded: past ``MAX_INTERNED`` keys on one server the
table starts afresh (every key is sent in full once more).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ratekeeper.client.keystate import KeyState, apply_instruction
from ratekeeper.client.wire import instructions_from_wire, known_instructions_from_wire
from ratekeeper.core.instructions import Instruction
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["MAX_INTERNED", "ServerKeys", "add_key", "apply_answer"]

#: Most keys interned on one server before its table starts afresh.
MAX_INTERNED = 200_000


@dataclass(slots=True)
class ServerKeys:
    """What one server knows of this client's keys."""

    #: Key hash → the id the server knows it by.
    ids: dict[int, int] = field(default_factory=dict)
    #: Id → the last instruction received for it (what a key left out of an answer keeps).
    last: dict[int, Instruction] = field(default_factory=dict)
    next_id: int = 1


def add_key(
    keys: ServerKeys | None,
    request: pb.ReportRequest,
    full: list[KeyState],
    known: list[KeyState],
    st: KeyState,
    admitted: int,
    rejected: int,
) -> None:
    """Put ``st``'s counts into ``request``: by id if the server knows it, else in full (and
    intern it; ``keys`` ``None``: always in full, not interned). ``full`` and ``known`` are the
    states of ``request.keys`` and ``request.known_ids``, aligned."""
    if keys is None:
        entry = request.keys.add()
        entry.MergeFromString(st.template)
        entry.admitted, entry.rejected = admitted, rejected
        full.append(st)
        return
    key_id = keys.ids.get(st.key_hash)
    if key_id is not None:
        request.known_ids.append(key_id)
        request.known_admitted.append(admitted)
        request.known_rejected.append(rejected)
        known.append(st)
        return
    if len(keys.ids) >= MAX_INTERNED:
        keys.ids.clear()
        keys.last.clear()
    key_id = keys.ids[st.key_hash] = keys.next_id
    keys.next_id += 1
    entry = request.keys.add()
    entry.MergeFromString(st.template)
    entry.admitted, entry.rejected, entry.key_id = admitted, rejected, key_id
    full.append(st)


def apply_answer(
    keys: ServerKeys | None,
    request: pb.ReportRequest,
    full: list[KeyState],
    known: list[KeyState],
    answer: pb.ReportResponse,
    now: int,
) -> None:
    """Apply ``answer`` to the states of ``request`` (see :func:`add_key`); durations from
    ``now``."""
    if not full and not known:
        return  # an answer to a probe: nothing to apply
    if keys is None:
        for st, instruction in zip(full, instructions_from_wire(answer), strict=False):
            apply_instruction(st, instruction, now)
        return
    last = keys.last
    for st, wire, instruction in zip(
        full, request.keys, instructions_from_wire(answer), strict=False
    ):
        apply_instruction(st, instruction, now)
        if wire.key_id:
            last[wire.key_id] = instruction
    if not known:
        return
    ids = request.known_ids
    unknown = set(answer.unknown_ids)
    for i, (st, kept) in enumerate(
        zip(known, known_instructions_from_wire(answer, ids, last), strict=True)
    ):
        key_id = ids[i]
        if key_id in unknown:  # not applied: counted again, in full, next cycle
            st.unsent_admitted += request.known_admitted[i]
            st.unsent_rejected += request.known_rejected[i]
            if keys.ids.get(st.key_hash) == key_id:
                del keys.ids[st.key_hash]
            last.pop(key_id, None)
            continue
        if kept is not None:
            apply_instruction(st, kept, now)
            last[key_id] = kept
