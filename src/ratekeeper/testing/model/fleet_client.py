"""The one place the model touches the client: the production :class:`LimiterMachine`.

The model needs five things of a client: decide a hit at an instant, say when its next report
cycle is due, build that cycle's reports, take an answer, take a failure. The machine is
passive and takes ``now`` as an argument everywhere, so the model drives it exactly as the
reporter thread of ``ratekeeper.Limiter`` does, with virtual instants instead of
``monotonic_ns``. Everything else the fleet loop does goes through :class:`FleetClient`, so
retargeting the model onto another client means rewriting this module only.

Decisions take the steps of :meth:`LimiterMachine.decide` (what ``Limiter.acquire`` does) on
the machine's own key states: :func:`~ratekeeper.client.decide.take`, then the hit counted
admitted or rejected. The explanation ``decide`` adds (remaining, retry-after) reads the state
without changing it, and the model needs only the verdict; the ``allow`` fast path takes the
same steps too, but it reads the process clock.
"""

from __future__ import annotations

from ratekeeper.client.decide import bump, take
from ratekeeper.client.machine import LimiterMachine, LimiterOptions, Outbound
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["CLIENT_EPOCH_NS", "FleetClient", "Outbound"]

#: Where client clocks start: far enough from 0 that a fresh key's ``earliest = 0`` is the past.
CLIENT_EPOCH_NS = 1000 * NS_PER_SECOND

#: The address every model client reports to (the model has one server).
SERVER = "model-server:1"


class FleetClient:
    """One client of the fleet: the production state machine, with no driver around it."""

    __slots__ = ("_machine", "interval_ns")

    def __init__(
        self, client_id: str, limit: str, report_interval_s: float, dealt_onset: bool = False
    ) -> None:
        options = LimiterOptions(
            limit=limit,
            report_interval=report_interval_s,
            client_id=client_id,
            dealt_onset=dealt_onset,
        )
        self._machine = LimiterMachine(SERVER, options)
        self.interval_ns = self._machine.interval_ns

    def decide(self, key: str, now: int) -> bool:
        """Admit one hit for ``key`` at ``now``?"""
        machine = self._machine
        st = machine.states.get(key) or machine.track(key)
        if take(st, now, 1):
            bump(st.admitted, 1)
            return True
        bump(st.rejected, 1)
        return False

    def due(self, now: int) -> int:
        """When the next report cycle runs (the machine's own schedule)."""
        due = self._machine.due(now)
        return now + self.interval_ns if due is None else due

    def collect(self, now: int) -> list[Outbound]:
        """This cycle's reports (each on its way to the server names the address its answer is
        handed back for; the model gives up on it after its ``timeout``, as the driver does)."""
        return self._machine.collect(now)

    def answered(self, sent: Outbound, answer: pb.ReportResponse, now: int) -> None:
        self._machine.answered(sent.address, answer, now)

    def failed(self, sent: Outbound, now: int) -> None:
        self._machine.failed(sent.address, "model: lost or past its deadline", now)

    @property
    def tracked(self) -> int:
        return len(self._machine.states)
