"""The typed policy tree that configuration files load into.

Loaders (envoyproxy/ratelimit YAML, the native Python spelling) produce these values once, at the
edge; everything downstream (server, client, Redis backend) reads only these types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import Limit

__all__ = ["Match", "RateLimitRule"]


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One configured descriptor node that carries a ``rate_limit`` (or whitelists a value)."""

    #: The domain the rule belongs to.
    domain: str
    #: The composite key, ``domain.key_value.key2_value2`` (envoyproxy/ratelimit's stats key and
    #: duplicate check); wildcard patterns appear as written.
    full_key: str
    #: The limits counted; empty when the node only whitelists its value (or is ``unlimited``).
    #: Several limits (10/second and 1000/day) are our extension.
    limits: tuple[Limit, ...] = ()
    #: ``rate_limit.name``: what other rules' ``replaces`` refer to.
    name: str | None = None
    #: ``rate_limit.unlimited``: always OK, counts nothing.
    unlimited: bool = False
    #: Evaluate normally, but report OVER_LIMIT as OK (and count it in the shadow_mode stat).
    shadow_mode: bool = False
    #: Names of limits this one replaces when both match in one request.
    replaces: tuple[str, ...] = ()
    #: Put the runtime value in the stats key.
    detailed_metric: bool = False
    #: Put the runtime value in the stats key at this level (ignored with ``detailed_metric``).
    value_to_metric: bool = False
    #: With a wildcard value: every matching value shares one counter keyed by the pattern.
    share_threshold: bool = False
    #: Over only if every quota descriptor of the request is over.
    quota_mode: bool = False
    #: Free-form metadata from the file, passed through.
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def whitelisted(self) -> bool:
        """A node with no limit that is not ``unlimited``: its values pass and count nowhere."""
        return not (self.limits or self.unlimited)


@dataclass(frozen=True, slots=True)
class Match:
    """The rule matched by one request descriptor, and how to name its counter and stats."""

    #: The matched rule.
    rule: RateLimitRule
    #: Entries naming the counter: the request's own, except that a ``share_threshold`` wildcard
    #: level contributes its pattern, so all matching values share one counter.
    counter_entries: Entries
    #: The stats key for this hit (``full_key`` with runtime values where ``detailed_metric`` or
    #: ``value_to_metric`` ask for them).
    stats_key: str
