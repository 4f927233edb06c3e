"""Typed reads of one field of a configuration map, with errors that point at the field.

Scalars convert the way the reference service's YAML decoder does: a string field takes any
scalar's source text (``value: 123`` is ``"123"``), a missing or null field is its zero value,
and a map or list where a scalar belongs is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.config.document import Doc, Kind
from ratekeeper.core.limits import ALGORITHM_BY_NAME, Algorithm
from ratekeeper.errors import ConfigError

__all__ = ["UINT32_MAX", "Fields"]

#: ``requests_per_unit`` is a uint32 on the wire (``RateLimitResponse.RateLimit``).
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Fields:
    """Reads fields of the maps of one file; ``file`` names it in errors."""

    #: The file being read, or ``None`` for Python data.
    file: str | None

    def error(self, reason: str, where: Doc | None = None, key: str | None = None) -> ConfigError:
        """An error about ``key`` at ``where``'s line."""
        return ConfigError(reason, file=self.file, line=where.line if where else None, key=key)

    def scalar(self, owner: Doc, key: str) -> Doc | None:
        """``owner[key]`` if it is a non-null scalar; ``None`` if missing or null."""
        doc = owner.field(key)
        if doc is None:
            return None
        if doc.kind is not Kind.SCALAR:
            raise self.error(f"'{key}' must be a single value, not a {doc.kind.value}", doc, key)
        return doc

    def text(self, owner: Doc, key: str) -> str:
        """A string field; ``""`` when missing or null."""
        doc = self.scalar(owner, key)
        return "" if doc is None else doc.text

    def flag(self, owner: Doc, key: str) -> bool:
        """A boolean field; ``False`` when missing or null."""
        doc = self.scalar(owner, key)
        if doc is None:
            return False
        if not isinstance(doc.value, bool):
            raise self.error(f"'{key}' must be true or false, got {doc.text!r}", doc, key)
        return doc.value

    def count(self, owner: Doc, key: str, *, low: int, high: int = UINT32_MAX) -> int | None:
        """An integer field in ``[low, high]``; ``None`` when missing or null."""
        doc = self.scalar(owner, key)
        if doc is None:
            return None
        value = doc.value
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            reason = f"'{key}' must be an integer from {low} to {high}, got {doc.text!r}"
            raise self.error(reason, doc, key)
        return value

    def algorithm(self, owner: Doc, default: Algorithm) -> Algorithm:
        """The ``algorithm`` field (our extension), or ``default``."""
        doc = self.scalar(owner, "algorithm")
        if doc is None:
            return default
        found = ALGORITHM_BY_NAME.get(doc.text.lower())
        if found is None:
            choices = ", ".join(ALGORITHM_BY_NAME)
            reason = f"unknown algorithm {doc.text!r} (expected one of {choices})"
            raise self.error(reason, doc, "algorithm")
        return found

    def items(self, owner: Doc, key: str) -> tuple[Doc, ...]:
        """The maps of a list field; ``()`` when missing or null."""
        doc = owner.field(key)
        if doc is None:
            return ()
        if doc.kind is not Kind.LIST:
            raise self.error(f"'{key}' must be a list", doc, key)
        return doc.items
