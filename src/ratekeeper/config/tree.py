"""The policy tree: every domain's descriptors, indexed for matching one request per call.

Matching follows envoyproxy/ratelimit exactly. Entries are walked level by level; at each level
the lookup is the exact ``key_value``, then the wildcard patterns in file order (first match
wins), then the bare ``key`` (any value). A rule applies only at the depth of the request's last
entry; a miss at any level, or more entries than levels, matches nothing (no fallback to a
shallower rule). A childless entry without a limit whitelists its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ratekeeper.config.document import from_python
from ratekeeper.config.model import Match, RateLimitRule
from ratekeeper.config.schema import DescriptorSpec, DomainSpec, read_domain
from ratekeeper.core.limits import Algorithm
from ratekeeper.errors import ConfigError

__all__ = ["PolicyTree"]


@dataclass(frozen=True, slots=True)
class _Node:
    """One configured descriptor entry, placed in its domain."""

    #: The entry's rule (``full_key`` and ``domain`` filled in).
    rule: RateLimitRule
    #: Whether the entry gives a limit; without one a childless entry whitelists its value.
    has_limit: bool
    #: ``key_value`` (or ``key``) as written: the lookup key and this level's stats segment.
    composite: str
    #: The configured value (a wildcard pattern for ``share_threshold``).
    value: str
    #: Whether a match here needs per-request work (share_threshold, value_to_metric or
    #: detailed_metric on the path); most matches are then a dict lookup per level and no more.
    dynamic: bool
    #: The next level, or ``None`` for a leaf.
    children: _Level | None


@dataclass(frozen=True, slots=True)
class _Level:
    """The entries of one level of one domain."""

    #: Every entry by composite key (wildcard entries too: a literal ``*`` value matches exactly).
    exact: Mapping[str, _Node]
    #: Compiled wildcard entries in file order.
    wildcards: tuple[tuple[re.Pattern[str], _Node], ...]

    def find(self, key: str, value: str) -> _Node | None:
        composite = f"{key}_{value}"
        node = self.exact.get(composite)
        if node is not None:
            return node
        for pattern, candidate in self.wildcards:
            if pattern.fullmatch(composite):
                return candidate
        return self.exact.get(key)


def _level(exact: dict[str, _Node]) -> _Level:
    wildcards = tuple(
        (wildcard_regex(composite), node) for composite, node in exact.items() if "*" in composite
    )
    return _Level(exact, wildcards)


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` with each ``*`` matching zero or more characters (use with ``fullmatch``)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _stats_segment(key: str, value: str) -> str:
    return f"{key}_{value}" if value else key


@dataclass(frozen=True, slots=True)
class PolicyTree:
    """Every loaded domain's policy; immutable, so a reload swaps the whole tree at once."""

    _domains: Mapping[str, _Level]

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> PolicyTree:
        """A tree with no domains: every request matches nothing."""
        return cls({})

    @classmethod
    def from_specs(cls, specs: Iterable[DomainSpec], *, merge_domains: bool = False) -> PolicyTree:
        """Assemble checked files; raises :class:`ConfigError` for duplicates across them."""
        domains: dict[str, dict[str, _Node]] = {}
        for spec in specs:
            if spec.domain in domains and not merge_domains:
                reason = f"duplicate domain '{spec.domain}' in config file"
                raise ConfigError(reason, file=spec.file, line=spec.line, key="domain")
            level = domains.setdefault(spec.domain, {})
            _place(level, spec.descriptors, f"{spec.domain}.", spec, dynamic=False)
        return cls({domain: _level(level) for domain, level in domains.items()})

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        merge_domains: bool = False,
    ) -> PolicyTree:
        """Load Python data shaped like one config file, or a list of them (same validation)."""
        documents = [data] if isinstance(data, Mapping) else list(data)
        specs = [read_domain(from_python(document)) for document in documents]
        return cls.from_specs(specs, merge_domains=merge_domains)

    def with_algorithm(self, algorithm: Algorithm) -> PolicyTree:
        """The same tree with every limit counted by ``algorithm`` (e.g. an envoy-compat mode)."""
        return PolicyTree(
            {name: _retarget(level, algorithm) for name, level in self._domains.items()}
        )

    # --- queries ---------------------------------------------------------------------------------

    @property
    def domains(self) -> tuple[str, ...]:
        """Domain names, in load order."""
        return tuple(self._domains)

    def match(self, domain: str, entries: Sequence[tuple[str, str]]) -> Match | None:
        """The rule for one request descriptor, or ``None`` (no limit applies)."""
        level = self._domains.get(domain)
        if level is None or not entries:
            return None
        path: list[_Node] = []
        for key, value in entries:
            if level is None:
                return None  # more entries than configured levels
            node = level.find(key, value)
            if node is None:
                return None
            path.append(node)
            level = node.children
        node = path[-1]
        if not node.has_limit and node.children is not None:
            return None
        if not node.dynamic:
            return Match(node.rule, tuple(entries), node.rule.full_key)
        return _dynamic_match(domain, path, entries)

    def rules(self) -> Iterator[RateLimitRule]:
        """Every rule a request can match (entries with a limit, and whitelisting leaves)."""
        for level in self._domains.values():
            yield from _rules(level)

    def describe(self) -> str:
        """A human-readable dump: domains, nested descriptors and their limits."""
        lines: list[str] = []
        for name, level in self._domains.items():
            lines.append(f"domain {name}")
            _describe(level, 1, lines)
        return "\n".join(lines) + "\n" if lines else "(no domains)\n"


def _place(
    level: dict[str, _Node],
    specs: Sequence[DescriptorSpec],
    parent_key: str,
    domain: DomainSpec,
    *,
    dynamic: bool,
) -> None:
    """Add ``specs`` to ``level``, checking composite keys are unique at the level."""
    for spec in specs:
        composite = spec.composite
        full_key = parent_key + composite
        if composite in level:
            reason = f"duplicate descriptor composite key '{full_key}'"
            raise ConfigError(reason, file=domain.file, line=spec.line, key="key")
        rule = replace(spec.rule, domain=domain.domain, full_key=full_key)
        path_dynamic = dynamic or rule.share_threshold or rule.value_to_metric
        children: dict[str, _Node] = {}
        _place(children, spec.children, full_key + ".", domain, dynamic=path_dynamic)
        level[composite] = _Node(
            rule=rule,
            has_limit=spec.has_limit,
            composite=composite,
            value=spec.value,
            dynamic=path_dynamic or rule.detailed_metric,
            children=_level(children) if children else None,
        )


def _dynamic_match(domain: str, path: list[_Node], entries: Sequence[tuple[str, str]]) -> Match:
    """A match that shares a counter across a wildcard, or puts runtime values in stats."""
    rule = path[-1].rule
    counter = tuple(
        (key, node.value) if node.rule.share_threshold else (key, value)
        for node, (key, value) in zip(path, entries, strict=True)
    )
    # As the reference: a share_threshold level keeps its pattern in the stats key too, whatever
    # detailed_metric or value_to_metric ask for (one counter, one stats key).
    if rule.detailed_metric:
        segments = [
            node.composite if node.rule.share_threshold else _stats_segment(key, value)
            for node, (key, value) in zip(path, entries, strict=True)
        ]
    else:
        segments = [
            _stats_segment(key, value)
            if node.rule.value_to_metric and not node.rule.share_threshold
            else node.composite
            for node, (key, value) in zip(path, entries, strict=True)
        ]
    return Match(rule, counter, f"{domain}.{'.'.join(segments)}")


def _retarget(level: _Level, algorithm: Algorithm) -> _Level:
    exact = {}
    for composite, node in level.exact.items():
        limits = tuple(replace(limit, algorithm=algorithm) for limit in node.rule.limits)
        children = _retarget(node.children, algorithm) if node.children else None
        exact[composite] = replace(node, rule=replace(node.rule, limits=limits), children=children)
    return _level(exact)


def _rules(level: _Level) -> Iterator[RateLimitRule]:
    for node in level.exact.values():
        if node.has_limit or node.children is None:
            yield node.rule
        if node.children is not None:
            yield from _rules(node.children)


#: Rule flags ``describe`` shows when set.
_FLAGS = ("shadow_mode", "detailed_metric", "value_to_metric", "share_threshold", "quota_mode")


def _summary(node: _Node) -> str:
    rule = node.rule
    if rule.unlimited:
        text = "unlimited"
    elif rule.limits:
        text = "; ".join(str(limit) for limit in rule.limits)
    else:
        text = "whitelisted (no limit)" if node.children is None else "-"
    flags = [flag for flag in _FLAGS if getattr(rule, flag)]
    if rule.name:
        flags.append(f"name={rule.name}")
    if rule.replaces:
        flags.append(f"replaces={','.join(rule.replaces)}")
    return f"{text}  [{', '.join(flags)}]" if flags else text


def _describe(level: _Level, depth: int, lines: list[str]) -> None:
    for node in level.exact.values():
        lines.append(f"{'  ' * depth}{node.composite}: {_summary(node)}")
        if node.children is not None:
            _describe(node.children, depth + 1, lines)
