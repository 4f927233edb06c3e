"""YAML composed within bounds, so no policy file can stall or fill the process that reads it.

A YAML file can ask for far more than its size: nine anchors each aliasing the previous one
nine times (a 419-byte "alias bomb") expand to 9^9 values; merge keys (``<<``) that merge a
map twice double it at every level; nesting a few thousand lists deep overflows the Python
stack of PyYAML's recursive composer. The composer here builds nodes from parser events with
an explicit stack, and refuses each of these while it reads, before anything is expanded:

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
_Pairs = list[tuple[yaml.Node, yaml.Node]]

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
    events = _EVENTS(text)
    try:
        return _Composer(events, bounds, file).single_document()
    except yaml.MarkedYAMLError as err:
        if "nesting depth" not in str(err.problem):
            raise
        # libyaml's own bound on open collections (deeper than ours unless raised past it)
        mark: Any = err.problem_mark
        line = int(mark.line) + 1 if mark is not None else None
        raise ConfigError(_too_deep(bounds), file=file, line=line) from None
    finally:
        events.dispose()


def _too_deep(bounds: LoadBounds) -> str:
    return f"nesting deeper than {bounds.max_depth} levels (max_depth)"


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
    except (ValueError, KeyError, TypeError, IndexError):
        tag = node.tag.rpartition(":")[2]
        reason = f"cannot read {node.value!r} as {tag}"
        raise ConfigError(reason, file=file, line=_line(node)) from None


def key_identity(node: yaml.Node, file: str | None) -> object:
    """What makes two keys the same key: their tag and value (``16`` and ``0x10`` are one)."""
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, scalar_value(node, file))
    return id(node)


#: The event source: libyaml's parser where PyYAML was built with it (it scans several times
#: faster than the pure-Python one, and neither recurses), else PyYAML's own.
_EVENTS: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class _Open:
    """A map or list whose end event has not come yet."""

    node: yaml.SequenceNode | yaml.MappingNode
    #: Its children so far (for a map: key, value, key, value, ...).
    items: list[yaml.Node]


class _Composer:
    """Builds nodes from parser events with an explicit stack (no recursion, so no depth can
    overflow it), checking each map and list as it closes: children are complete before their
    parent, so every measure is computed once."""

    def __init__(self, events: Any, bounds: LoadBounds, file: str | None) -> None:
        self._events = events
        self._bounds = bounds
        self._file = file
        self._anchors: dict[str, yaml.Node] = {}
        #: ``id(node) -> (expanded size, height)`` of every completed node.
        self._measure: dict[int, tuple[int, int]] = {}

    def _refuse(self, reason: str, line: int | None, key: str | None = None) -> ConfigError:
        return ConfigError(reason, file=self._file, line=line, key=key)

    def single_document(self) -> yaml.Node | None:
        events = self._events
        events.get_event()  # stream start
        if events.check_event(yaml.StreamEndEvent):
            return None
        events.get_event()  # document start
        root = self._document()
        events.get_event()  # document end
        if not events.check_event(yaml.StreamEndEvent):
            event: Any = events.peek_event()
            reason = "error loading config file: expected a single document, found a second"
            raise self._refuse(reason, int(event.start_mark.line) + 1)
        return root

    def _document(self) -> yaml.Node:
        stack: list[_Open] = []
        while True:
            event: Any = self._events.get_event()
            node: yaml.Node
            if isinstance(event, yaml.ScalarEvent):
                node = self._scalar(event)
            elif isinstance(event, yaml.AliasEvent):
                node = self._alias(event)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                if len(stack) >= self._bounds.max_depth:
                    mark: Any = event.start_mark
                    raise self._refuse(_too_deep(self._bounds), int(mark.line) + 1)
                stack.append(self._open(event))
                continue
            else:  # the end of the innermost open map or list
                node = self._close(stack.pop(), event)
            if not stack:
                return node
            stack[-1].items.append(node)

    def _tag(self, event: Any, kind: type[yaml.Node], value: str | None) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":
            resolved: str = self._events.resolve(kind, value, event.implicit)
            return resolved
        return tag

    def _scalar(self, event: Any) -> yaml.ScalarNode:
        tag = self._tag(event, yaml.ScalarNode, event.value)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        self._anchor(event, node)
        self._measure[id(node)] = (1, 0)
        return node

    def _alias(self, event: Any) -> yaml.Node:
        node = self._anchors.get(str(event.anchor))
        if node is None:
            line = int(event.start_mark.line) + 1
            raise self._refuse(f"alias '*{event.anchor}' names no anchor before it", line)
        return node

    def _open(self, event: Any) -> _Open:
        mark, flow = event.start_mark, event.flow_style
        node: yaml.SequenceNode | yaml.MappingNode
        if isinstance(event, yaml.SequenceStartEvent):
            node = yaml.SequenceNode(
                self._tag(event, yaml.SequenceNode, None), [], mark, None, flow
            )
        else:
            node = yaml.MappingNode(self._tag(event, yaml.MappingNode, None), [], mark, None, flow)
        self._anchor(event, node)
        return _Open(node, [])

    def _anchor(self, event: Any, node: yaml.Node) -> None:
        if event.anchor is not None:
            self._anchors[event.anchor] = node  # a later anchor of the same name replaces it

    def _close(self, done: _Open, event: Any) -> yaml.Node:
        node = done.node
        node.end_mark = event.end_mark
        if isinstance(node, yaml.MappingNode):
            pairs = list(zip(done.items[::2], done.items[1::2], strict=True))
            node.value = self._merged(pairs)
            self._check(node, done.items if node.value == pairs else _flat(node.value))
        else:
            node.value = done.items
            self._check(node, done.items)
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

    def _merged(
        self, written: list[tuple[yaml.Node, yaml.Node]]
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """A map's pairs with merge keys resolved; refuses a key written twice."""
        own: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in written:
            if key.tag == _MERGE:
                for source in self._merge_sources(value):
                    # Sources were composed (and merged) before this map; earlier ones win.
                    for pair in source.value:
                        merged.setdefault(key_identity(pair[0], self._file), pair)
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


def _flat(pairs: _Pairs) -> list[yaml.Node]:
    return [part for pair in pairs for part in pair]
