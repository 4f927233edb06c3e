"""The one place the model touches the server: the production report logic on a memory store.

:class:`FleetServer` takes a client's report as it travels on the wire and returns the answer,
at a virtual instant: the same path as ``ReportServicer.report`` (``report_from_wire``, then
:meth:`ReportProcessor.process` behind a :class:`StoreGate`, then ``answer_to_wire``), with the
servicer's clock replaced by the model's. The processor never suspends on a
:class:`~ratekeeper.backends.memory.MemoryStore`, so :func:`~.runner.run_sync` steps it.
Retargeting the model onto another server layer means changing this module only.
"""

from __future__ import annotations

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import answer_to_wire, report_from_wire
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.testing.clock import START_NS
from ratekeeper.testing.model.runner import run_sync

__all__ = ["FleetServer"]


class FleetServer:
    """One server with no configured policy: every key counts against its inline limits."""

    __slots__ = ("_processor",)

    def __init__(self, settings: ReportSettings | None = None) -> None:
        self._processor = ReportProcessor(
            StoreGate(MemoryStore()), lambda: None, settings or ReportSettings()
        )

    def process(self, request: pb.ReportRequest, now: int) -> pb.ReportResponse:
        """Apply ``request`` at virtual ``now`` (ns from the start of the run)."""
        answer = run_sync(self._processor.process(report_from_wire(request), START_NS + now))
        return answer_to_wire(answer)
