"""Which keys a configuration document may use, checked over the whole document first.

The reference service checks keys against one flat set wherever they appear (so ``unit`` beside
``key`` is tolerated and ignored); we do the same for its keys, so every file it accepts loads
here. Our extension keys are new, so they are checked where they mean something: a misplaced
``burst`` is an error instead of being silently ignored. ``metadata`` is free-form.
"""

from __future__ import annotations

import enum

from ratekeeper.config.document import Doc, Kind
from ratekeeper.config.fields import Fields

__all__ = ["EXTENSION_KEYS", "REFERENCE_KEYS", "Place", "check_document"]


class Place(enum.Enum):
    """Where a map sits in the document."""

    ROOT = "the top level"
    DESCRIPTOR = "a descriptor"
    RATE_LIMIT = "rate_limit"
    REPLACES = "a replaces entry"
    OTHER = "this map"


#: envoyproxy/ratelimit's keys, accepted at any level.
REFERENCE_KEYS = frozenset(
    {
        "domain", "descriptors", "key", "value", "rate_limit", "unit", "requests_per_unit",
        "unlimited", "name", "replaces", "shadow_mode", "detailed_metric", "value_to_metric",
        "share_threshold", "quota_mode", "metadata",
    }
)  # fmt: skip

#: Our extensions and the places each may appear.
EXTENSION_KEYS: dict[str, frozenset[Place]] = {
    "unit_multiplier": frozenset({Place.RATE_LIMIT}),
    "burst": frozenset({Place.RATE_LIMIT}),
    "algorithm": frozenset({Place.RATE_LIMIT, Place.ROOT}),
    "rate_limits": frozenset({Place.DESCRIPTOR}),
    "limit": frozenset({Place.DESCRIPTOR}),
}

#: The place of the maps a key holds (directly, or as list items).
_CHILD_PLACE = {
    "descriptors": Place.DESCRIPTOR,
    "rate_limit": Place.RATE_LIMIT,
    "rate_limits": Place.RATE_LIMIT,
    "replaces": Place.REPLACES,
}

_FREE_FORM = "metadata"

#: Scalar types a value may have outside ``metadata`` (the reference rejects floats and others).
_SCALAR_TYPES = (str, int, bool, type(None))


def check_document(doc: Doc, fields: Fields) -> None:
    """Raise :class:`~ratekeeper.errors.ConfigError` at the first key or value out of place."""
    if doc.kind is not Kind.MAP:
        raise fields.error(
            f"config error, the top level must be a map, not a {doc.kind.value}", doc
        )
    _check_map(doc, Place.ROOT, fields)


def _check_map(doc: Doc, place: Place, fields: Fields) -> None:
    # YAML cannot repeat a key (the composer refuses it) and Python mappings cannot either; were
    # one repeated, its last value would win (Doc.get) and only that one is checked.
    last = {key.value: index for index, (key, _) in enumerate(doc.pairs)}
    for index, (key, value) in enumerate(doc.pairs):
        if not isinstance(key.value, str):
            raise fields.error(f"config error, key is not of type string: {key.text}", key)
        name = key.value
        _check_allowed(name, place, key, fields)
        if last[name] == index and name != _FREE_FORM:
            _check_value(value, _CHILD_PLACE.get(name, Place.OTHER), fields, name)


def _check_allowed(name: str, place: Place, key: Doc, fields: Fields) -> None:
    if name in REFERENCE_KEYS:
        return
    places = EXTENSION_KEYS.get(name)
    if places is None:
        raise fields.error(f"config error, unknown key '{name}'", key, name)
    if place not in places:
        where = " or ".join(sorted(p.value for p in places))
        reason = f"config error, unknown key '{name}' in {place.value} (allowed in {where})"
        raise fields.error(reason, key, name)


def _check_value(doc: Doc, place: Place, fields: Fields, name: str) -> None:
    if doc.kind is Kind.MAP:
        _check_map(doc, place, fields)
    elif doc.kind is Kind.LIST:
        for item in doc.items:
            if item.kind is not Kind.MAP:
                shown = item.text if item.kind is Kind.SCALAR else item.kind.value
                reason = f"config error, yaml file contains list of type other than map: {shown}"
                raise fields.error(reason, item, name)
            _check_map(item, place, fields)
    elif not isinstance(doc.value, _SCALAR_TYPES):
        reason = (
            f"config error, unsupported value {doc.text!r} (expected a string, integer or boolean)"
        )
        raise fields.error(reason, doc, name)
