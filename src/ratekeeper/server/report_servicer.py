"""gRPC ``ratekeeper.v1.ReportService`` over a :class:`ReportProcessor`.

Translates the wire and nothing else: a ``ReportRequest`` becomes a typed
:class:`~ratekeeper.protocol.report_values.Report` (``ratekeeper.proto.report``), the processor
applies it at the clock's time, and its answer goes back as a ``ReportResponse``. A malformed
report gets ``INVALID_ARGUMENT`` naming the key and the reason; a store that fails gets
``UNAVAILABLE`` (the client keeps its last instructions until they expire: fail open); anything
unexpected gets ``INTERNAL`` and is logged (``ratekeeper.server.refusal``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import answer_to_wire, report_from_wire, report_handler
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.protocol.stats import MemoryStats, StatsSink
from ratekeeper.server.refusal import refusal, refuse

__all__ = ["ReportServicer", "add_report_servicer"]

_CALL = "report"


class ReportServicer:
    """``Report`` on the event loop; stats go to ``stats``."""

    def __init__(
        self,
        processor: ReportProcessor,
        stats: StatsSink | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._processor = processor
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._clock = clock
        self._latency = self._stats.timer(_CALL)

    @property
    def reports(self) -> int:
        """Reports answered so far."""
        return self._processor.reports

    async def report(self, request: pb.ReportRequest) -> pb.ReportResponse:
        """Apply ``request`` now; raises :class:`RequestError` if it is malformed and the
        store's :class:`BackendError` if it fails."""
        answer = await self._processor.process(report_from_wire(request), self._clock())
        return answer_to_wire(answer)

    async def Report(
        self, request: pb.ReportRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReportResponse:
        """The gRPC method: :meth:`report` with errors mapped to status codes."""
        start = time.perf_counter()
        try:
            response = await self.report(request)
        except Exception as exc:
            refused = refusal(exc, self._stats, _CALL)
        else:
            self._latency.observe(time.perf_counter() - start)
            return response
        return await refuse(context, refused, self._latency, start)


def add_report_servicer(servicer: ReportServicer, server: grpc.aio.Server) -> None:
    """Serve ``servicer`` as ``ratekeeper.v1.ReportService`` on ``server``."""
    server.add_generic_rpc_handlers((report_handler(servicer.Report),))
