"""The result of counting hits against one limit."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CountedOutcome", "Outcome"]


class Outcome(NamedTuple):
    """What one algorithm decided for one hit (or batch of hits) at one instant.

    A named tuple rather than a frozen dataclass: one is built per counter per decision, and a
    frozen dataclass's ``__init__`` makes one ``object.__setattr__`` call per field, several
    times the cost of a tuple's, on the RLS handler's hot path (measured in
    docs/benchmarks.md).
    """

    #: Whether the hits were admitted.
    allowed: bool
    #: Whole hits still admissible right after this decision (never negative).
    remaining: int
    #: Nanoseconds until the counter is back to full capacity (window reset, bucket full).
    reset_after_ns: int
    #: Nanoseconds until one more hit would be admitted (0 while some remain); ``-1`` never.
    retry_after_ns: int


class CountedOutcome(Outcome):
    """An over-limit :class:`Outcome` of an algorithm that keeps a count (the fixed window),
    with that count: the RLS stats split a batch's hits between near and over the limit by it,
    as envoyproxy/ratelimit does. Equal to the plain outcome (the count is no part of the
    decision); made only when over, so the admitting path builds plain tuples."""

    #: The counter's count with the hits added (counted or not).
    count_after: int

    @classmethod
    def over(cls, reset_after_ns: int, retry_after_ns: int, count_after: int) -> CountedOutcome:
        """A refusal (nothing remaining) at ``count_after``."""
        outcome = cls(False, 0, reset_after_ns, retry_after_ns)
        outcome.count_after = count_after
        return outcome
