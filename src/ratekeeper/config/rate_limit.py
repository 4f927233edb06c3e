"""The limits of one descriptor, from its ``rate_limit``, ``rate_limits`` or ``limit`` field.

``rate_limit`` is the reference's block, validated exactly as the reference does (unit checked
case-insensitively, ``unlimited`` without a unit, ``replaces`` entries non-empty and not naming
the rule itself), plus our ``unit_multiplier``, ``burst`` and ``algorithm``. ``rate_limits`` (a
list of such blocks) and ``limit`` (a string such as ``"10/second; 1000/day burst 20"``) are our
extensions for several limits on one key. A descriptor gives at most one of the three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ratekeeper.config.document import Doc, Kind
from ratekeeper.config.fields import Fields
from ratekeeper.core.limits import UNIT_BY_NAME, Algorithm, Limit, Unit, parse_limits
from ratekeeper.errors import LimitParseError

__all__ = ["LimitSpec", "read_limits"]


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """What a descriptor says about limiting its value."""

    #: Whether the descriptor gives any of rate_limit / rate_limits / limit (else it whitelists).
    given: bool = False
    #: The limits counted (empty when unlimited).
    limits: tuple[Limit, ...] = ()
    #: ``name``: what other rules' ``replaces`` refer to.
    name: str | None = None
    #: Names of the limits this one replaces.
    replaces: tuple[str, ...] = ()
    #: ``unlimited: true``.
    unlimited: bool = False


def read_limits(descriptor: Doc, fields: Fields, algorithm: Algorithm) -> LimitSpec:
    """The descriptor's limits; ``algorithm`` is the default for those that name none."""
    given = [key for key in _SPELLINGS if descriptor.field(key) is not None]
    if not given:
        return LimitSpec()
    if len(given) > 1:
        reason = f"give only one of rate_limit, rate_limits and limit, not {' and '.join(given)}"
        raise fields.error(reason, descriptor.get(given[1]), given[1])
    doc = descriptor.field(given[0])
    assert doc is not None
    return _SPELLINGS[given[0]](doc, fields, algorithm)


def _expect(doc: Doc, kind: Kind, key: str, fields: Fields) -> None:
    if doc.kind is not kind:
        raise fields.error(f"'{key}' must be a {kind.value}, not a {doc.kind.value}", doc, key)


def _one(block: Doc, fields: Fields, algorithm: Algorithm) -> LimitSpec:
    """The reference's ``rate_limit`` block (with our extension fields)."""
    _expect(block, Kind.MAP, "rate_limit", fields)
    name = fields.text(block, "name")
    replaces = _replaces(block, fields, name)
    unlimited = fields.flag(block, "unlimited")
    unit_text = fields.text(block, "unit")
    unit = UNIT_BY_NAME.get(unit_text.lower())  # the reference's names, any case
    if unlimited:
        if unit is not None:
            reason = "should not specify rate limit unit when unlimited"
            raise fields.error(reason, block.get("unit"), "unit")
        return LimitSpec(True, (), name or None, replaces, unlimited=True)
    return LimitSpec(True, (_limit(block, fields, algorithm, unit),), name or None, replaces)


def _limit(block: Doc, fields: Fields, algorithm: Algorithm, unit: Unit | None) -> Limit:
    if unit is None:
        reason = f"invalid rate limit unit '{fields.text(block, 'unit')}'"
        raise fields.error(reason, block.get("unit") or block, "unit")
    return Limit(
        amount=fields.count(block, "requests_per_unit", low=0) or 0,
        unit=unit,
        multiplier=fields.count(block, "unit_multiplier", low=1) or 1,
        burst=fields.count(block, "burst", low=0),
        algorithm=fields.algorithm(block, algorithm),
    )


def _replaces(block: Doc, fields: Fields, name: str) -> tuple[str, ...]:
    names = []
    for entry in fields.items(block, "replaces"):
        replaced = fields.text(entry, "name")
        if not replaced:
            raise fields.error("should not have an empty replaces entry", entry, "replaces")
        if replaced == name:
            reason = "replaces should not contain name of same descriptor"
            raise fields.error(reason, entry, "replaces")
        names.append(replaced)
    return tuple(names)


def _several(blocks: Doc, fields: Fields, algorithm: Algorithm) -> LimitSpec:
    """Our ``rate_limits`` list: one limit per item; name/replaces on at most one item."""
    _expect(blocks, Kind.LIST, "rate_limits", fields)
    specs = [_one(block, fields, algorithm) for block in blocks.items]
    if not specs:
        raise fields.error("rate_limits must list at least one limit", blocks, "rate_limits")
    named = [spec for spec in specs if spec.name or spec.replaces]
    if len(named) > 1:
        reason = "only one item of rate_limits may carry name or replaces"
        raise fields.error(reason, blocks, "rate_limits")
    if any(spec.unlimited for spec in specs):
        reason = "unlimited belongs in rate_limit, not in rate_limits"
        raise fields.error(reason, blocks, "rate_limits")
    first = named[0] if named else LimitSpec()
    limits = tuple(limit for spec in specs for limit in spec.limits)
    return LimitSpec(True, limits, first.name, first.replaces)


def _compact(text: Doc, fields: Fields, algorithm: Algorithm) -> LimitSpec:
    """Our ``limit: "10/second; 1000/day burst 20"`` string."""
    _expect(text, Kind.SCALAR, "limit", fields)
    try:
        return LimitSpec(True, parse_limits(text.text, algorithm=algorithm))
    except LimitParseError as err:
        raise fields.error(str(err), text, "limit") from None


_SPELLINGS: dict[str, Callable[[Doc, Fields, Algorithm], LimitSpec]] = {
    "rate_limit": _one,
    "rate_limits": _several,
    "limit": _compact,
}
