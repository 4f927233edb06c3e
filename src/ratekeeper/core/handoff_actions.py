"""What the hand-off machine (:mod:`ratekeeper.core.handoff`) returns, and its timings: plain
values, each an instruction to the driver, and the slice arithmetic they are computed with."""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.slices import Generation, Slice

__all__ = [
    "Action",
    "ColdParts",
    "Drop",
    "HandoffTimings",
    "Lost",
    "Release",
    "Send",
    "SendLate",
    "Shipment",
    "StartEmpty",
    "Warm",
    "cold_within",
    "minus",
    "overlap",
    "without",
]

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class HandoffTimings:
    """How long a hand-off may take and how often a failed send is retried (ns)."""

    #: How long a sender retries and a receiver waits before taking the other side for gone.
    timeout_ns: int = 5_000 * _MS
    #: Wait after the first failed send; doubled after each further failure.
    first_retry_ns: int = 50 * _MS
    #: Longest wait between two sends.
    max_retry_ns: int = 1_000 * _MS
    #: Wait after a range was handed off before a late pass sends on the counters that reports
    #: still reaching this member created there meanwhile (and between two late passes).
    linger_ns: int = 500 * _MS
    #: Most late passes per range handed off; they stop early once one finds nothing.
    late_passes: int = 3


@dataclass(frozen=True, slots=True)
class Shipment:
    """Export ``slice`` and send it to ``target`` (the fields :class:`Send` and
    :class:`SendLate` share); report back with ``token``, give up on the call by ``deadline``."""

    slice: Slice
    target: str
    generation: Generation
    token: int
    deadline: int


@dataclass(frozen=True, slots=True)
class Send(Shipment):
    """Export ``slice`` and send it to ``target``; report :meth:`HandoffMachine.sent` or
    :meth:`HandoffMachine.failed` with ``token``, and give up on the call by ``deadline``."""


@dataclass(frozen=True, slots=True)
class Release:
    """``slice`` is no longer this member's: drop its counters, and start any counter created
    there later (a report sent before its client learned of the move) empty as of ``since``."""

    slice: Slice
    #: Whether its new owner confirmed the transfer (else the sender gave up).
    delivered: bool
    #: When the range was moved away (for the hand-off duration).
    started: int
    since: int


@dataclass(frozen=True, slots=True)
class StartEmpty:
    """Counters created in ``slice`` from now on start empty as of ``since``."""

    slice: Slice
    since: int


@dataclass(frozen=True, slots=True)
class Warm:
    """``slice``'s counters have arrived: counters created there from now on start full."""

    slice: Slice
    #: When the range was gained (for the hand-off duration); ``None`` if it was not pending.
    started: int | None


@dataclass(frozen=True, slots=True)
class Lost:
    """No transfer of ``slice`` arrived in time: its counters stay started empty."""

    slice: Slice
    started: int


@dataclass(frozen=True, slots=True)
class SendLate(Shipment):
    """Export the counters reports created in ``slice`` after it was handed off (they reached
    this member late) and send them to ``target`` as a late pass; report
    :meth:`~ratekeeper.core.handoff.HandoffMachine.late_sent` with how many, or ``failed``."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Forget the counters of ``slice`` (its cold mark stays)."""

    slice: Slice


Action = Send | Release | StartEmpty | Warm | Lost | SendLate | Drop


def overlap(a: Slice, b: Slice) -> Slice | None:
    """The part of ``a`` inside ``b``, or ``None``."""
    low, high = max(a.low, b.low), min(a.high, b.high)
    return Slice(low, high) if low < high else None


def minus(a: Slice, b: Slice) -> list[Slice]:
    """The parts of ``a`` outside ``b`` (none, one or two)."""
    parts = [Slice(a.low, min(a.high, b.low)), Slice(max(a.low, b.high), a.high)]
    return [p for p in parts if p.low < p.high]


#: Parts of a transferred range that were cold on its sender, each with its mark's instant.
ColdParts = tuple[tuple[Slice, int], ...]


def cold_within(piece: Slice, cold: ColdParts) -> list[Action]:
    """The marks of ``cold`` over the parts of it inside ``piece``."""
    return [StartEmpty(part, since) for c, since in cold if (part := overlap(c, piece)) is not None]


def without(piece: Slice, taken: list[Slice]) -> list[Slice]:
    """The parts of ``piece`` outside every slice of ``taken``."""
    parts = [piece]
    for other in taken:
        parts = [rest for part in parts for rest in minus(part, other)]
    return parts
