"""A batch report and its answer as typed values: what the report logic takes and returns.

The wire forms (``ratekeeper.v1.ReportRequest`` / ``ReportResponse``) are converted to and from
these at the edge (``ratekeeper.proto.report``), so the logic never sees protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ratekeeper.core.instructions import Instruction
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import Limit

__all__ = ["KeyCounts", "Report", "ReportAnswer"]


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """One key of a report: what the client counted for it since its previous report."""

    #: The rate limit domain.
    domain: str
    #: The descriptor entries naming the key, as the client sent them.
    entries: Entries
    #: Hits the client admitted.
    admitted: int = 0
    #: Hits the client rejected (they count as demand, not against the limit).
    rejected: int = 0
    #: Limits the client declares for a key no configured rule matches (validated on the wire).
    limits: tuple[Limit, ...] = ()
    #: Nonzero: the client's id for the key on this server; later reports send only its counts
    #: (:attr:`Report.known_ids`).
    key_id: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    """One client's batch report to one server."""

    #: Stable identity of the reporting client process (demand is tracked per client).
    client_id: str
    #: Every key the client has on this server with counts to report (any sequence: the wire
    #: edge hands a lazy view that converts a key when it is read).
    keys: Sequence[KeyCounts]
    #: Time the counts cover, in nanoseconds (client clock).
    interval_ns: int = 0
    #: The client's report number to this server, from 1; a repeat is answered, not applied
    #: again. 0: not numbered, always applied.
    sequence: int = 0
    #: Keys interned by an earlier report (:attr:`KeyCounts.key_id`), by id, with their counts
    #: (aligned).
    known_ids: Sequence[int] = ()
    known_admitted: Sequence[int] = ()
    known_rejected: Sequence[int] = ()
    #: The client applied the answer to its previous report: unchanged known keys may be left
    #: out of this one's answer.
    omit_unchanged: bool = False


@dataclass(frozen=True, slots=True)
class ReportAnswer:
    """The server's answer to one report."""

    #: One per report key, in report order (``limits`` empty: the key is not limited).
    instructions: tuple[Instruction, ...]
    #: Keys the server rejects for every client, reported or not: (key hash, ns left).
    hot: tuple[tuple[int, int], ...] = ()
    #: Indexes into :attr:`Report.known_ids` of the known keys answered, and their instructions
    #: (aligned). Every other known key the server knows keeps the rate and limits of its last
    #: instruction, with no rejection period, for ``valid_for_ns``.
    changed: tuple[int, ...] = ()
    changed_instructions: tuple[Instruction, ...] = ()
    valid_for_ns: int = 0
    #: Known ids the server does not know: nothing of them was applied.
    unknown_ids: tuple[int, ...] = ()
    #: Clients the server heard from recently, and this client's slot among them (stable while
    #: it keeps reporting; :mod:`ratekeeper.core.fleet_slots`). 0 and 0: not known.
    fleet: int = 0
    slot: int = 0

    def with_fleet(self, fleet: int, slot: int) -> ReportAnswer:
        """This answer naming ``fleet`` and ``slot`` (every report's: built positionally, at
        half the cost of ``dataclasses.replace``)."""
        return ReportAnswer(
            self.instructions,
            self.hot,
            self.changed,
            self.changed_instructions,
            self.valid_for_ns,
            self.unknown_ids,
            fleet,
            slot,
        )
