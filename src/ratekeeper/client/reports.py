"""Report bookkeeping per server: numbering, resending the unanswered, forgiving an outage.

Reports are numbered per server and a server applies each number once, so a report that got no
answer (a timeout: the server may or may not have applied it) is resent unchanged as that
server's report of the next cycle; the counts of its keys wait in place meanwhile. After about a
second of failures the backlog is forgiven instead: the hits it would carry were admitted while
the server could not be asked, and debiting an outage's worth at once would keep a recovered key
rejected long after the outage ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ratekeeper.client.keystate import KeyState
from ratekeeper.core.slices import Generation
from ratekeeper.proto.assignment import generation_to_wire
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["PendingReport", "ReportBook"]


@dataclass(slots=True)
class PendingReport:
    """One report to one server, and the states its answer applies to (in request order)."""

    #: The server it goes to.
    address: str
    #: The request as sent (and resent, unchanged, until answered or forgiven).
    request: pb.ReportRequest
    #: The key states of ``request.keys``, aligned.
    states: list[KeyState] = field(default_factory=list)


class ReportBook:
    """Per server: the last report number, the report awaiting a resend, the failure streak."""

    def __init__(self, client_id: str, retry_cycles: int) -> None:
        self._client_id = client_id
        self._retry_cycles = retry_cycles
        self._sequences: dict[str, int] = {}
        self._streaks: dict[str, int] = {}
        #: Reports to send again next cycle, by server; their keys' new counts wait.
        self.unanswered: dict[str, PendingReport] = {}
        #: Servers whose held-back counts the next cycle drops (see the module docstring).
        self.forgiven: set[str] = set()

    def new(self, address: str, interval_ns: int, generation: Generation) -> PendingReport:
        """A fresh, numbered, empty report to ``address``."""
        sequence = self._sequences[address] = self._sequences.get(address, 0) + 1
        request = pb.ReportRequest(
            client_id=self._client_id,
            interval_ns=interval_ns,
            sequence=sequence,
            generation=generation_to_wire(generation),
        )
        return PendingReport(address, request)

    def answered(self, address: str) -> None:
        self.unanswered.pop(address, None)
        self._streaks.pop(address, None)

    def failed(self, report: PendingReport) -> None:
        """Resend ``report`` next cycle, or forgive its server's backlog after a long streak."""
        address = report.address
        streak = self._streaks[address] = self._streaks.get(address, 0) + 1
        if streak < self._retry_cycles:
            self.unanswered[address] = report
        else:
            self.unanswered.pop(address, None)
            self._streaks.pop(address, None)
            self.forgiven.add(address)

    def withdraw(self, servers: frozenset[str]) -> list[PendingReport]:
        """Stop resending the unanswered reports of servers not in ``servers`` (they left the
        assignment) and return them, so their counts go to the new owners."""
        gone = [address for address in self.unanswered if address not in servers]
        for address in gone:
            self._streaks.pop(address, None)
        return [self.unanswered.pop(address) for address in gone]

    def take_forgiven(self) -> set[str]:
        """The servers to forgive this cycle (each once)."""
        forgiven, self.forgiven = self.forgiven, set()
        return forgiven
