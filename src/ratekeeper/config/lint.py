"""Checks a valid config may still fail: what ``ratekeeper check-config --strict`` reports.

A descriptor with no limit and no children is valid, in the reference too (it whitelists its
value), but it is also what a mis-indented ``unit:``/``requests_per_unit:`` beside ``key:``
(instead of under ``rate_limit:``) leaves: a rule that limits nothing, silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ratekeeper.config.schema import DescriptorSpec, DomainSpec

__all__ = ["Finding", "limitless_leaves"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``--strict`` refuses, and where."""

    file: str | None
    line: int | None
    #: The descriptor's full key in its domain (``key_value`` per level, dot-separated).
    key: str
    reason: str

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line) if part is not None)
        return f"{where}: {self.key}: {self.reason}" if where else f"{self.key}: {self.reason}"


def limitless_leaves(domains: Iterable[DomainSpec]) -> list[Finding]:
    """Descriptors that give no limit (``rate_limit``, ``unlimited``) and have no children."""
    return [finding for domain in domains for finding in _leaves(domain, domain.descriptors, "")]


def _leaves(domain: DomainSpec, specs: Iterable[DescriptorSpec], parent: str) -> Iterator[Finding]:
    for spec in specs:
        key = parent + spec.composite
        if spec.children:
            yield from _leaves(domain, spec.children, key + ".")
        elif not spec.has_limit:
            reason = (
                f"limits nothing and has no children (domain {domain.domain!r}); if it is not "
                "meant as a whitelist, check that unit: and requests_per_unit: are indented "
                "under rate_limit:"
            )
            yield Finding(domain.file, spec.line, key, reason)
