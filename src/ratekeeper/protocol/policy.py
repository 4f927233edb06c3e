"""The loaded policy as protocol logic sees it, and the holder a reload swaps it in.

The policy is swapped whole: readers take :attr:`PolicyHolder.policy` once per request and use
that object throughout, so a request never sees half of an old config and half of a new one
(the reload itself is ``ratekeeper.server.reload``).
"""

from __future__ import annotations

from typing import Protocol

from ratekeeper.config.model import Match
from ratekeeper.core.keys import Entries

__all__ = ["Matcher", "Policy", "PolicyHolder"]


class Matcher(Protocol):
    """The part of a loaded policy (``ratekeeper.config.PolicyTree``) a report needs."""

    def match(self, domain: str, entries: Entries) -> Match | None:
        """The rule for one descriptor, or ``None`` (unknown domain, no rule)."""
        ...


class Policy(Matcher, Protocol):
    """What the server reads from a loaded config (a ``ratekeeper.config.PolicyTree``)."""

    def describe(self) -> str:
        """A human-readable dump (``/rlconfig``)."""
        ...

    @property
    def domains(self) -> tuple[str, ...]:
        """The configured domain names."""
        ...


class PolicyHolder:
    """The current policy; replaced whole, never mutated."""

    def __init__(self, policy: Policy) -> None:
        #: The policy in force; a reload assigns a new one.
        self.policy = policy
