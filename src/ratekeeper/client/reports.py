"""Report bookkeeping per server: numbering, resending the unanswered, forgiving an outage.

Reports are numbered per server and a server applies each number once, so a report that got no
answer (a timeout: the server may or may not have applied it) is resent unchanged as that
server's report of the next cycle; the counts of its keys wait in place meanwhile. After about a
second of failures the backlog is forgiven instead: the hits it would carry were admitted while
the server could not be asked, and debiting an outage's worth at once would keep a recovered key
rejected long after the outage ended.

A report's deadline grows with its size (:func:`report_timeout`): a server applies a large
report in chunks, resting between them so its other calls are served (issue 15), and a fixed
50 ms deadline left reports of 2,000 keys or more unanswered forever (each resend timed out
too). Reports are split by size by the machine's ``max_keys_per_report`` (the rest of the keys
wait for the next cycle), never into parallel parts: a server applies a client's report numbers
in order, so one report per server is in flight at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ratekeeper.client.interned import ServerKeys, add_key, apply_answer
from ratekeeper.client.keystate import KeyState
from ratekeeper.core.slices import Generation
from ratekeeper.proto.assignment import generation_to_wire
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["TIMEOUT_PER_KEY_S", "PendingReport", "ReportBook", "report_timeout"]

#: Seconds of deadline per key a report carries, on top of the limiter's timeout: several times
#: what a server spends per key (docs/benchmarks.md, "Large reports"), so a report the server's
#: limits accept is answered even on a loaded machine.
TIMEOUT_PER_KEY_S = 500e-6


#: What :meth:`ReportBook.take_forgiven` returns when no server is forgiven.
_NONE: frozenset[str] = frozenset()


def report_timeout(base: float, keys: int) -> float:
    """Seconds a report of ``keys`` keys may take, given the limiter's ``base`` timeout."""
    return base + TIMEOUT_PER_KEY_S * keys


@dataclass(slots=True)
class PendingReport:
    """One report to one server, and the states its answer applies to (in request order)."""

    #: The server it goes to.
    address: str
    #: The request as sent (and resent, unchanged, until answered or forgiven).
    request: pb.ReportRequest
    #: What the server knows of this client's keys (``client.interned``; ``None``: every key
    #: is sent in full).
    keys: ServerKeys | None = None
    #: The key states of ``request.keys``, and of ``request.known_ids``, aligned.
    states: list[KeyState] = field(default_factory=list)
    known: list[KeyState] = field(default_factory=list)

    def __len__(self) -> int:
        """Keys in the report."""
        return len(self.states) + len(self.known)

    def add(self, st: KeyState, admitted: int, rejected: int) -> None:
        """Report ``st``'s counts: by id if the server knows the key, else in full."""
        add_key(self.keys, self.request, self.states, self.known, st, admitted, rejected)

    def counts(self) -> Iterator[tuple[KeyState, int, int]]:
        """Every reported state with the admitted and rejected hits the report carries for it
        (in full or by id)."""
        for st, entry in zip(self.states, self.request.keys, strict=False):
            yield st, entry.admitted, entry.rejected
        request = self.request
        yield from zip(self.known, request.known_admitted, request.known_rejected, strict=False)

    def apply(self, answer: pb.ReportResponse, now: int) -> None:
        """Apply the server's ``answer`` to the reported states; durations from ``now``."""
        apply_answer(self.keys, self.request, self.states, self.known, answer, now)


class ReportBook:
    """Per server: the last report number, the report awaiting a resend, the failure streak."""

    def __init__(self, client_id: str, retry_cycles: int, compact: bool = False) -> None:
        """``compact``: intern keys per server (``client.interned``)."""
        self._client_id = client_id
        self._compact = compact
        self._retry_cycles = retry_cycles
        self._sequences: dict[str, int] = {}
        self._streaks: dict[str, int] = {}
        #: Per server: the keys it knows by id, and whether it has answered the last report.
        self._keys: dict[str, ServerKeys] = {}
        self._synced: set[str] = set()
        #: Reports to send again next cycle, by server; their keys' new counts wait.
        self.unanswered: dict[str, PendingReport] = {}
        #: Servers whose held-back counts the next cycle drops (see the module docstring).
        self.forgiven: set[str] = set()
        #: The shared fields of the last reports made, serialised (:meth:`_head`).
        self._heads: tuple[int, Generation | None, bytes] = (-1, None, b"")

    def new(self, address: str, interval_ns: int, generation: Generation) -> PendingReport:
        """A fresh, numbered, empty report to ``address``."""
        sequence = self._sequences[address] = self._sequences.get(address, 0) + 1
        request = pb.ReportRequest(
            sequence=sequence, omit_unchanged=self._compact and address in self._synced
        )
        request.MergeFromString(self._head(interval_ns, generation))
        if not self._compact:
            return PendingReport(address, request)
        keys = self._keys.get(address)
        if keys is None:
            keys = self._keys[address] = ServerKeys()
        return PendingReport(address, request, keys)

    def _head(self, interval_ns: int, generation: Generation) -> bytes:
        """The fields every report of a cycle shares (client id, interval, generation),
        serialised once per change of interval or generation rather than built per report."""
        head = self._heads
        if head[0] != interval_ns or head[1] != generation:
            head = self._heads = (
                interval_ns,
                generation,
                pb.ReportRequest(
                    client_id=self._client_id,
                    interval_ns=interval_ns,
                    generation=generation_to_wire(generation),
                ).SerializeToString(),
            )
        return head[2]

    def answered(self, address: str) -> None:
        self.unanswered.pop(address, None)
        self._streaks.pop(address, None)
        self._synced.add(address)

    def failed(self, report: PendingReport) -> None:
        """Resend ``report`` next cycle, or forgive its server's backlog after a long streak."""
        address = report.address
        self._synced.discard(address)
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
        if not self.unanswered:
            return []
        gone = [address for address in self.unanswered if address not in servers]
        for address in gone:
            self._streaks.pop(address, None)
        return [self.unanswered.pop(address) for address in gone]

    def hold_for(self, retry_cycles: int) -> None:
        """Forgive a server's backlog only after ``retry_cycles`` failed reports in a row."""
        self._retry_cycles = retry_cycles

    def take_forgiven(self) -> AbstractSet[str]:
        """The servers to forgive this cycle (each once)."""
        forgiven = self.forgiven
        if not forgiven:
            return _NONE  # read only: the next failure adds to ``self.forgiven``, not to it
        self.forgiven = set()
        return forgiven
