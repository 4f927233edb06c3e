"""The one place the model touches the server: today's report logic on an in-memory store.

:class:`FleetServer` takes a client's report as it travels on the wire and returns the answer,
at a virtual instant. Today that is :meth:`ReportService.report` over a
:class:`~ratekeeper.backends.memory.MemoryStore`, stepped by :func:`~.runner.run_sync` (neither
ever suspends). Retargeting onto a ``ReportProcessor.process(report, now)`` means converting the
wire message to the typed report and back here, and nowhere else in the model.
"""

from __future__ import annotations

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.server.report_service import ReportService, ReportSettings
from ratekeeper.testing.clock import START_NS
from ratekeeper.testing.model.runner import run_sync

__all__ = ["FleetServer"]


class FleetServer:
    """One server with no configured policy: every key counts against its inline limits."""

    __slots__ = ("_now", "_service", "reports")

    def __init__(self, settings: ReportSettings | None = None) -> None:
        self._now = START_NS
        self._service = ReportService(
            MemoryStore(),
            lambda: None,
            settings=settings or ReportSettings(),
            clock=lambda: self._now,
        )
        #: Reports processed (each one a report RPC that reached the server).
        self.reports = 0

    def process(self, request: pb.ReportRequest, now: int) -> pb.ReportResponse:
        """Apply ``request`` at virtual ``now`` (ns from the start of the run)."""
        self._now = START_NS + now
        self.reports += 1
        return run_sync(self._service.report(request))
