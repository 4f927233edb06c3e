"""A configuration document as a tree of located values, from YAML text or from Python data.

Both spellings of a policy (a YAML file, a Python mapping) become the same :class:`Doc` tree, so
validation is written once and every error can name the line it is about. YAML is *composed*
(not constructed) so each value keeps its position; ``line`` is 1-based and ``None`` for values
that came from Python.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ratekeeper.config.bounded_yaml import DEFAULT_BOUNDS, LoadBounds, compose, scalar_value
from ratekeeper.errors import ConfigError

__all__ = ["Doc", "Kind", "from_python", "from_yaml", "to_python"]


class Kind(enum.Enum):
    """The shape of a value."""

    SCALAR = "scalar"
    LIST = "list"
    MAP = "map"


@dataclass(frozen=True, slots=True)
class Doc:
    """One value of a configuration document and where it was written."""

    #: Scalar, list or map.
    kind: Kind
    #: 1-based line of the value in its file; ``None`` when it came from Python.
    line: int | None
    #: A scalar's typed value (str, int, bool, None, float, ...).
    value: Any = None
    #: A scalar's source text: string fields take it verbatim, so ``value: 123`` means ``"123"``
    #: as it does for the reference service.
    text: str = ""
    #: A list's items.
    items: tuple[Doc, ...] = ()
    #: A map's entries in document order, repeated keys included.
    pairs: tuple[tuple[Doc, Doc], ...] = ()

    def get(self, key: str) -> Doc | None:
        """The value of ``key`` in a map, or ``None``.

        A repeated key's last value wins (YAML files cannot repeat one: the composer refuses it).
        """
        for name, value in reversed(self.pairs):
            if name.value == key:
                return value
        return None

    def field(self, key: str) -> Doc | None:
        """The value of ``key``, or ``None`` if missing or null (the field's zero value)."""
        value = self.get(key)
        if value is None or (value.kind is Kind.SCALAR and value.value is None):
            return None
        return value


# --- YAML ----------------------------------------------------------------------------------------


def from_yaml(text: str, *, file: str | None = None, bounds: LoadBounds = DEFAULT_BOUNDS) -> Doc:
    """Compose YAML ``text`` into a :class:`Doc`; an empty document is an empty map.

    Raises :class:`ConfigError` with the parser's line for a syntax error, and for a document
    beyond ``bounds`` (see :mod:`ratekeeper.config.bounded_yaml`) or with a key written twice.
    """
    try:
        node = compose(text, bounds, file)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"error loading config file: {err.problem or err}"
        raise ConfigError(reason, file=file, line=line) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"error loading config file: {err}", file=file) from None
    if node is None:
        return Doc(Kind.MAP, 1)
    return _convert(node, file)


def _convert(node: yaml.Node, file: str | None) -> Doc:
    # Merge keys are already resolved and the expansion bounded by the composer.
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        pairs = tuple((_convert(key, file), _convert(value, file)) for key, value in node.value)
        return Doc(Kind.MAP, line, pairs=pairs)
    if isinstance(node, yaml.SequenceNode):
        return Doc(Kind.LIST, line, items=tuple(_convert(item, file) for item in node.value))
    assert isinstance(node, yaml.ScalarNode)
    return Doc(Kind.SCALAR, line, value=scalar_value(node, file), text=node.value)


# --- Python --------------------------------------------------------------------------------------


def from_python(data: object) -> Doc:
    """Wrap Python data (dicts, lists, scalars) as a :class:`Doc` without line numbers."""
    if isinstance(data, Mapping):
        pairs = tuple((from_python(key), from_python(value)) for key, value in data.items())
        return Doc(Kind.MAP, None, pairs=pairs)
    if isinstance(data, list | tuple):
        return Doc(Kind.LIST, None, items=tuple(from_python(item) for item in data))
    text = str(data).lower() if isinstance(data, bool) else str(data)
    return Doc(Kind.SCALAR, None, value=data, text="" if data is None else text)


def to_python(doc: Doc, file: str | None = None) -> Any:
    """Plain Python data for a free-form value (``metadata``).

    Raises :class:`ConfigError` (naming ``file``) for a map key that is itself a map or list,
    which YAML allows and Python dicts cannot hold.
    """
    if doc.kind is Kind.MAP:
        data = {}
        for key, value in doc.pairs:
            if key.kind is not Kind.SCALAR:
                reason = f"a map key must be a single value, not a {key.kind.value}"
                raise ConfigError(reason, file=file, line=key.line)
            data[key.value] = to_python(value, file)
        return data
    if doc.kind is Kind.LIST:
        return [to_python(item, file) for item in doc.items]
    return doc.value
