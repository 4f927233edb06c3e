"""The counts a limiter keeps about itself, written by its machine and read by anyone."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LimiterStats"]


@dataclass(slots=True)
class LimiterStats:
    """Counts a limiter keeps about itself (plain values, safe to read from any thread)."""

    #: Report cycles run (each sends at most one report per server).
    cycles: int = 0
    #: Reports answered, and reports that failed or timed out (their instructions kept).
    answered: int = 0
    failed: int = 0
    #: Keys tracked, as of the last look.
    tracked: int = 0
    #: Keys with a server's instruction (a rejection period or a rate) in force, per cycle.
    instructions: int = 0
    #: Hits admitted on keys whose server's latest report had failed: decided locally only.
    admitted_failing_open: int = 0
    #: Keys seen while ``max_keys`` were tracked: admitted, neither limited nor reported.
    untracked: int = 0
    #: Keys dropped because they were idle with no instruction in force.
    pruned: int = 0
    #: Servers owning a slice of the assignment routed by, and its generation
    #: ``(incarnation, number)``, as of the last look.
    owners: int = 0
    generation: tuple[int, int] = (0, 0)
    #: Hits of unanswered reports re-sent to a new owner after their server left the assignment.
    rerouted: int = 0
    #: Seconds: the longest report deadline of any server (its share per key aside): the
    #: limiter's ``timeout``, longer while a round trip is (``client.deadline``).
    report_deadline: float = 0.0
