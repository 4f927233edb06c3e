"""YAML composed within bounds, so no policy file can stall or fill the process that reads it.

A YAML file can ask for far more than its size: nine anchors each aliasing the previous one
nine times (a 419-byte "alias bomb") expand to 9^9 values; merge keys (``<<``) that merge a
map twice double it at every level; nesting a few thousand lists deep overflows the Python
stack of a recursive composer. The composer here refuses each of these while it reads, before
anything is expanded:

* **depth**: maps and lists nested deeper than :attr:`LoadBounds.max_depth`, directly or
  through aliases;
* **expansion**: a value that stands for more than :attr:`LoadBounds.max_nodes` values once its
  aliases and merges are expanded. Sizes are computed bottom-up, once per written node, so the
  check costs time linear in the file, not in the expansion;
* **duplicate keys**: a map that writes one key twice (the reference's YAML decoder silently
  keeps the last, turning a typo into a changed limit);
* **recursive aliases** (an alias to a map or list that contains it).

Merge keys are resolved here (the merged keys first, each once, then the map's own keys), so
later stages see plain maps. The size bound on the file itself is the loader's
(:attr:`LoadBounds.max_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ratekeeper.errors import ConfigError

__all__ = ["DEFAULT_BOUNDS", "LoadBounds", "compose", "key_identity", "scalar_value"]

_MERGE = "tag:yaml.org,2002:merge"

# A throwaway SafeLoader gives us PyYAML's own scalar constructors (YAML 1.1 booleans, ints in
# every base, ...) without constructing whole Python objects.
_CONSTRUCTORS = yaml.SafeLoader("")
SCALAR_TAGS: dict[str, Callable[[yaml.ScalarNode], Any]] = {
    "tag:yaml.org,2002:null": _CONSTRUCTORS.construct_yaml_null,
    "tag:yaml.org,2002:bool": _CONSTRUCTORS.construct_yaml_bool,
    "tag:yaml.org,2002:int": _CONSTRUCTORS.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCTORS.construct_yaml_float,
}


@dataclass(frozen=True, slots=True)
class LoadBounds:
    """What one policy file may hold at most; each bound is far above any real policy."""

    #: Largest file read, in bytes.
    max_bytes: int = 8 * 1024 * 1024
    #: Deepest nesting of maps and lists (a descriptor level costs two: its map and its list).
    max_depth: int = 64
    #: Most values (scalars, maps, lists) the file stands for once aliases and merges expand.
    max_nodes: int = 500_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_nodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=f"bounds.{name}")


#: The bounds a load uses unless told otherwise.
DEFAULT_BOUNDS = LoadBounds()


def compose(text: str, bounds: LoadBounds, file: str | None) -> yaml.Node | None:
    """The single document of ``text``, checked and with merge keys resolved; ``None`` if empty.

    Raises :class:`ConfigError` naming ``file``, the line and the bound for a refused document;
    PyYAML's own errors (syntax) propagate as ``yaml.YAMLError``.
    """
    if len(text) > bounds.max_bytes:
        reason = f"document of {len(text)} characters exceeds the bound of {bounds.max_bytes}"
        raise ConfigError(reason, file=file)
    loader = _BoundedComposer(text, bounds, file)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def scalar_value(node: yaml.ScalarNode, file: str | None) -> Any:
    """The typed value of a scalar (YAML 1.1 booleans, ints in every base, ...); raises
    :class:`ConfigError` for an explicit tag that asks the impossible (``!!int abc``)."""
    construct = SCALAR_TAGS.get(node.tag)
    if construct is None:
        return node.value
    try:
        return construct(node)
    except (ValueError, KeyError, TypeError):
        tag = node.tag.rpartition(":")[2]
        raise ConfigError(
            f"cannot read {node.value!r} as {tag}", file=file, line=_line(node)
        ) from None


def key_identity(node: yaml.Node, file: str | None) -> object:
    """What makes two keys the same key: their tag and value (``16`` and ``0x10`` are one)."""
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, scalar_value(node, file))
    return id(node)


class _BoundedComposer(yaml.SafeLoader):
    """PyYAML's composer, checking each node as it is completed (children before parents)."""

    def __init__(self, text: str, bounds: LoadBounds, file: str | None) -> None:
        super().__init__(text)
        self._bounds = bounds
        self._file = file
        self._depth = 0
        #: ``id(node) -> (expanded size, height)`` of every completed node.
        self._measure: dict[int, tuple[int, int]] = {}

    def _refuse(self, reason: str, line: int | None, key: str | None = None) -> ConfigError:
        return ConfigError(reason, file=self._file, line=line, key=key)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead through open flow collections at a cost that grows with their
        # depth: refuse ``[[[[...`` while scanning, before the composer even sees it.
        if self.flow_level >= self._bounds.max_depth:
            line = int(self.get_mark().line) + 1
            raise self._refuse(self._too_deep, line)
        super().fetch_flow_collection_start(TokenClass)

    @property
    def _too_deep(self) -> str:
        return f"nesting deeper than {self._bounds.max_depth} levels (max_depth)"

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self._bounds.max_depth:
                line = int(self.peek_event().start_mark.line) + 1  # type: ignore[no-untyped-call]
                raise self._refuse(self._too_deep, line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        node: yaml.ScalarNode = super().compose_scalar_node(anchor)
        self._measure[id(node)] = (1, 0)
        return node

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        node: yaml.SequenceNode = super().compose_sequence_node(anchor)
        self._check(node, node.value)
        return node

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        node: yaml.MappingNode = super().compose_mapping_node(anchor)
        node.value = self._merged(node)
        self._check(node, [part for pair in node.value for part in pair])
        return node

    def _check(self, node: yaml.Node, children: list[yaml.Node]) -> None:
        """Record ``node``'s expanded size and height, refusing one beyond the bounds."""
        size, height = 1, 0
        for child in children:
            measured = self._measure.get(id(child))
            if measured is None:  # an alias to a node still being composed: an ancestor
                raise self._refuse("recursive alias (a value that contains itself)", _line(child))
            size += measured[0]
            height = max(height, measured[1])
        height += 1
        if height > self._bounds.max_depth:
            reason = f"nesting deeper than {self._bounds.max_depth} levels through aliases"
            raise self._refuse(f"{reason} (max_depth)", _line(node))
        if size > self._bounds.max_nodes:
            reason = (
                f"aliases expand this value to {size} values, more than the bound of "
                f"{self._bounds.max_nodes} (max_nodes)"
            )
            raise self._refuse(reason, _line(node))
        self._measure[id(node)] = (size, height)

    def _merged(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """The map's pairs with merge keys resolved; refuses a key written twice."""
        own: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if key.tag == _MERGE:
                for source in self._merge_sources(value):
                    for pair in source.value:  # already merged: composed before this map
                        merged.setdefault(
                            key_identity(pair[0], self._file), pair
                        )  # earlier sources win
                continue
            identity = key_identity(key, self._file)
            first = own.get(identity)
            if first is not None:
                shown = str(key.value)
                reason = f"duplicate key '{shown}' (first written at line {_line(first[0])})"
                raise self._refuse(reason, _line(key), shown)
            own[identity] = (key, value)
        pairs = [pair for identity, pair in merged.items() if identity not in own]
        return pairs + list(own.values())

    def _merge_sources(self, value: yaml.Node) -> list[yaml.MappingNode]:
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        if not all(isinstance(item, yaml.MappingNode) for item in items):
            raise self._refuse("'<<' must merge a map or a list of maps", _line(value), "<<")
        for item in items:
            if id(item) not in self._measure:
                raise self._refuse("recursive merge (a map that merges itself)", _line(value), "<<")
        return list(items)
