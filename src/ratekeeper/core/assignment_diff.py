"""Diffs between assignments, and the plain (wire-friendly) shapes a Watch sends.

A diff from ``before`` to ``after`` lists the slices of ``after`` that ``before`` does not hold
identically (same range, same owner). Applying it to ``before`` keeps every slice of ``before``
that no listed slice overlaps and adds the listed ones, which rebuilds ``after`` exactly: a slice
of ``before`` that also appears in ``after`` overlaps no other slice of ``after``, and one that
does not is covered only by listed slices. A diff names the generation it applies to (``base``);
applied to anything else it is refused, and the party asks for the whole assignment instead.

The plain forms use only dicts, lists, ints and strings, so a JSON or protobuf layer maps them
field for field. Addresses are listed once in ``servers`` and slices refer to them by index,
because an assignment has many slices and few servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from ratekeeper.core.assignment import Piece, from_pieces, pieces
from ratekeeper.core.slices import Assignment, Generation, Slice

__all__ = [
    "AssignmentDiff",
    "PlainAssignment",
    "PlainDiff",
    "Update",
    "apply_diff",
    "apply_update",
    "diff",
    "update_for",
    "update_from_plain",
    "update_to_plain",
]


@dataclass(frozen=True, slots=True)
class AssignmentDiff:
    """What turns the assignment of generation ``base`` into that of ``generation``."""

    #: The generation this diff applies to.
    base: Generation
    #: The generation of the assignment it produces.
    generation: Generation
    #: The slices of the new assignment that the base does not hold identically, in hash order.
    changed: tuple[Piece, ...]


#: What a Watch answers with: a diff when the caller's generation is known, else the whole.
Update = Assignment | AssignmentDiff


class PlainAssignment(TypedDict):
    """An assignment as plain values."""

    generation: list[int]
    servers: list[str]
    starts: list[int]
    owners: list[int]


class PlainDiff(TypedDict):
    """A diff as plain values; ``slices`` rows are ``[low, high, server index]``."""

    base: list[int]
    generation: list[int]
    servers: list[str]
    slices: list[list[int]]


def diff(before: Assignment, after: Assignment) -> AssignmentDiff:
    """The diff that turns ``before`` into ``after``."""
    held = set(pieces(before))
    changed = tuple(p for p in pieces(after) if p not in held)
    return AssignmentDiff(before.generation, after.generation, changed)


def apply_diff(before: Assignment, change: AssignmentDiff) -> Assignment:
    """The assignment ``change`` makes of ``before``; :class:`ValueError` if it does not fit."""
    if before.generation != change.base:
        raise ValueError(
            f"diff applies to generation {_pair(change.base)}, not {_pair(before.generation)}"
        )
    kept = [p for p in pieces(before) if not _overlaps_any(p[0], change.changed)]
    return from_pieces(change.generation, [*kept, *change.changed])


def _overlaps_any(piece: Slice, changed: Sequence[Piece]) -> bool:
    # ``changed`` is in hash order, so a bisect would do; diffs are short and this stays obvious.
    return any(c.low < piece.high and piece.low < c.high for c, _ in changed)


def update_for(
    known: Generation | None,
    current: Assignment,
    history: Mapping[Generation, Assignment],
) -> Update | None:
    """What a Watch should send a caller that holds generation ``known``.

    ``None`` when the caller is up to date (the long poll keeps waiting), a diff when ``known``
    is in ``history`` and the diff is smaller than the whole, else the whole assignment (a
    caller that is new, far behind, or ahead of a restarted assigner).
    """
    if known == current.generation:
        return None
    base = history.get(known) if known is not None else None
    if base is None or base.generation >= current.generation:
        return current
    change = diff(base, current)
    return change if len(change.changed) < len(current.starts) else current


def apply_update(held: Assignment | None, update: Update) -> Assignment:
    """The assignment to hold after receiving ``update``.

    A whole assignment is adopted only if it is newer than ``held`` (a stale reply never rolls
    a party back); a diff must apply to ``held`` exactly, else :class:`ValueError`.
    """
    if isinstance(update, Assignment):
        if held is not None and update.generation <= held.generation:
            return held
        return update
    if held is None:
        raise ValueError("a diff needs the assignment it applies to")
    return apply_diff(held, update)


def update_to_plain(update: Update) -> PlainAssignment | PlainDiff:
    """``update`` as plain values (see the module docstring)."""
    if isinstance(update, Assignment):
        servers = sorted(update.servers)
        index = {s: i for i, s in enumerate(servers)}
        return PlainAssignment(
            generation=_pair(update.generation),
            servers=servers,
            starts=list(update.starts),
            owners=[index[o] for o in update.owners],
        )
    servers = sorted({owner for _, owner in update.changed})
    index = {s: i for i, s in enumerate(servers)}
    return PlainDiff(
        base=_pair(update.base),
        generation=_pair(update.generation),
        servers=servers,
        slices=[[p.low, p.high, index[o]] for p, o in update.changed],
    )


def update_from_plain(plain: Mapping[str, object]) -> Update:
    """An update from plain values, checked field by field; :class:`ValueError` if malformed."""
    servers = _strings(plain.get("servers"), "servers")
    generation = _generation(plain.get("generation"), "generation")
    if "base" in plain:
        rows = _rows(plain.get("slices"), "slices", 3)
        changed = tuple((Slice(low, high), _server(servers, i)) for low, high, i in rows)
        if any(p.low >= p.high for p, _ in changed):
            raise ValueError("slices: a diff slice is empty")
        return AssignmentDiff(_generation(plain.get("base"), "base"), generation, changed)
    starts = _ints(plain.get("starts"), "starts")
    owners = tuple(_server(servers, i) for i in _ints(plain.get("owners"), "owners"))
    return Assignment(generation, starts, owners)


def _pair(generation: Generation) -> list[int]:
    return [generation.incarnation, generation.number]


def _server(servers: Sequence[str], index: int) -> str:
    if not 0 <= index < len(servers):
        raise ValueError(f"server index {index} is not in servers")
    return servers[index]


def _ints(value: object, name: str) -> tuple[int, ...]:
    # bool is an int subclass; a True where a hash belongs is a malformed message, not 1
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"{name}: expected a list of integers")
    return tuple(value)


def _strings(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: expected a list of strings")
    return tuple(value)


def _rows(value: object, name: str, arity: int) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name}: expected a list of rows")
    rows = tuple(_ints(row, name) for row in value)
    if any(len(row) != arity for row in rows):
        raise ValueError(f"{name}: every row needs {arity} integers")
    return rows


def _generation(value: object, name: str) -> Generation:
    pair = _ints(value, name)
    if len(pair) != 2 or min(pair) < 0:
        raise ValueError(f"{name}: expected [incarnation, number], both non-negative")
    return Generation(pair[0], pair[1])
