"""The result of counting hits against one limit."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one algorithm decided for one hit (or batch of hits) at one instant."""

    #: Whether the hits were admitted.
    allowed: bool
    #: Whole hits still admissible right after this decision (never negative).
    remaining: int
    #: Nanoseconds until the counter is back to full capacity (window reset, bucket full).
    reset_after_ns: int
    #: Nanoseconds until one more hit would be admitted (0 while some remain); ``-1`` never.
    retry_after_ns: int
