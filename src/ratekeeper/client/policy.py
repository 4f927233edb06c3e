"""What a client knows about a key before any server has answered: its name and its limits.

Resolved once, when a key is first seen (never on the decision path). A key is a plain string,
named by the single descriptor entry ``("key", name)``, or a tuple of descriptor entries
``(("user", "alice"), ("path", "/x"))`` as Envoy sends them. Its limits come from, in order:

1. a policy tree (a ``ratekeeper.config`` file), matched exactly as the server matches it;
2. the inline limits given to the ``Limiter`` (one spec for every key, or glob patterns over
   plain-string keys, first match wins). Inline limits travel with each report so that a server
   with no configured rule for the key counts it all the same (a configured rule always wins);
3. none: the key is admitted optimistically until a server says otherwise.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ratekeeper.config import PolicyTree, load_config
from ratekeeper.core.keys import Entries, canonical_bytes, key_hash
from ratekeeper.core.limits import Limit, parse_limits

__all__ = ["Key", "KeyPolicy", "LimitsArg", "Policies", "local_limit"]

#: A key as callers pass it: a plain name or descriptor entries.
Key = str | tuple[tuple[str, str], ...]
#: Inline limits as callers spell them: ``"100/s burst 200"``, ``"10/s; 1000/day"`` or values.
LimitsArg = str | Limit | Sequence[Limit]


def _limits(spec: LimitsArg) -> tuple[Limit, ...]:
    if isinstance(spec, str):
        return parse_limits(spec)
    if isinstance(spec, Limit):
        return (spec,)
    return tuple(spec)


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """A key, resolved."""

    #: The descriptor entries naming the key on the wire.
    entries: Entries
    #: The 64-bit hash that routes the key to its owning server.
    key_hash: int
    #: The limits the client enforces locally (empty: none known).
    limits: tuple[Limit, ...]
    #: Whether ``limits`` are inline (sent with each report) rather than from a policy tree.
    inline: bool


class Policies:
    """Resolves keys for one ``Limiter``; immutable once built."""

    __slots__ = ("_default", "_domain", "_patterns", "_tree")

    def __init__(
        self,
        domain: str,
        limit: LimitsArg | Mapping[str, LimitsArg] | None = None,
        tree: PolicyTree | str | os.PathLike[str] | None = None,
    ) -> None:
        self._domain = domain
        self._tree = tree if tree is None or isinstance(tree, PolicyTree) else load_config(tree)
        self._patterns: tuple[tuple[str, tuple[Limit, ...]], ...] = ()
        self._default: tuple[Limit, ...] = ()
        if isinstance(limit, Mapping):
            self._patterns = tuple((pattern, _limits(spec)) for pattern, spec in limit.items())
        elif limit is not None:
            self._default = _limits(limit)

    @property
    def domain(self) -> str:
        return self._domain

    def resolve(self, key: Key) -> KeyPolicy:
        """The entries, hash and limits of ``key``; raises ``TypeError`` for a malformed key."""
        entries = _entries(key)
        hashed = key_hash(canonical_bytes(self._domain, entries))
        if self._tree is not None:
            match = self._tree.match(self._domain, entries)
            if match is not None:
                rule = match.rule
                return KeyPolicy(entries, hashed, () if rule.unlimited else rule.limits, False)
        limits = self._default
        if isinstance(key, str):
            limits = next(
                (lim for pat, lim in self._patterns if fnmatch.fnmatchcase(key, pat)), limits
            )
        return KeyPolicy(entries, hashed, limits, bool(limits))


def _entries(key: Key) -> Entries:
    if isinstance(key, str):
        return (("key", key),)
    if (
        isinstance(key, tuple)
        and key
        and all(
            isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], str)
            for e in key
        )
    ):
        return key
    raise TypeError(f"a rate limit key is a str or a tuple of (key, value) str pairs, not {key!r}")


def local_limit(limits: Sequence[Limit]) -> Limit | None:
    """The one limit the local limiter enforces: the shortest window (then the lowest rate).

    Between two reports it is the short window that a spike can blow through; a long window
    (1000/day) spans thousands of report cycles and the server's answers hold it.
    """
    if not limits:
        return None
    return min(limits, key=lambda lim: (lim.period_ns, lim.rate_per_s))
