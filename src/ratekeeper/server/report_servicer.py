"""gRPC ``ratekeeper.v1.ReportService`` over a :class:`ReportProcessor`.

Translates the wire and nothing else: a ``ReportRequest`` becomes a typed
:class:`~ratekeeper.protocol.report_values.Report` (``ratekeeper.proto.report``), the processor
applies it at the clock's time, and its answer goes back as a ``ReportResponse``. A malformed
report gets ``INVALID_ARGUMENT`` naming the key and the reason; a store that fails gets
``UNAVAILABLE`` (the client keeps its last instructions until they expire: fail open); anything
unexpected gets ``INTERNAL`` and is logged (``ratekeeper.server.refusal``).

A large report never stalls the event loop (issue 15): its keys are read from the wire as the
processor walks them, it is applied and answered in chunks, and between chunks the servicer's
:class:`~ratekeeper.protocol.chunked.TimeBudget` rests on the loop once ``yield_budget_ns`` of
work has run, so ``ShouldRateLimit`` calls arriving meanwhile wait about that long at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import (
    answer_to_wire,
    instruction_to_wire,
    lazy_report_from_wire,
    report_handler,
)
from ratekeeper.protocol.chunked import Chunker, TimeBudget
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.protocol.report_values import ReportAnswer
from ratekeeper.protocol.stats import MemoryStats, StatsSink
from ratekeeper.server.refusal import refusal, refuse

__all__ = [
    "YIELD_BUDGET_NS",
    "YIELD_FROM_KEYS",
    "YIELD_REST_NS",
    "ReportServicer",
    "add_report_servicer",
]

_CALL = "report"

#: Longest a report runs on the event loop before it lets other calls in, and how long it rests
#: then (ns; see :class:`~ratekeeper.protocol.chunked.TimeBudget`).
YIELD_BUDGET_NS = 1_000_000
YIELD_REST_NS = 500_000
#: Reports with fewer keys never rest (a few ms of work at most).
YIELD_FROM_KEYS = 256


class ReportServicer:
    """``Report`` on the event loop; stats go to ``stats``."""

    def __init__(
        self,
        processor: ReportProcessor,
        stats: StatsSink | None = None,
        clock: Callable[[], int] = time.time_ns,
        yield_budget_ns: int = YIELD_BUDGET_NS,
        yield_rest_ns: int = YIELD_REST_NS,
        yield_from_keys: int = YIELD_FROM_KEYS,
    ) -> None:
        self._processor = processor
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._clock = clock
        self._latency = self._stats.timer(_CALL)
        #: Rests a report on the loop once it has run its budget.
        self.budget = TimeBudget(
            yield_budget_ns, yield_rest_ns, time.perf_counter_ns, yield_from_keys
        )
        processor.pause = self.budget
        self._chunks = Chunker(processor.chunk_keys, self.budget)

    @property
    def reports(self) -> int:
        """Reports answered so far."""
        return self._processor.reports

    async def report(self, request: pb.ReportRequest) -> pb.ReportResponse:
        """Apply ``request`` now; raises :class:`RequestError` if it is malformed and the
        store's :class:`BackendError` if it fails."""
        self.budget.enter(len(request.keys) + len(request.known_ids))
        answer = await self._processor.process(lazy_report_from_wire(request), self._clock())
        return await self._to_wire(answer)

    async def _to_wire(self, answer: ReportAnswer) -> pb.ReportResponse:
        """``answer_to_wire``, its instructions written a chunk at a time."""
        response = answer_to_wire(
            ReportAnswer(
                (), answer.hot, answer.changed, (), answer.valid_for_ns, answer.unknown_ids
            )
        )
        chunks = self._chunks
        for instructions, wire in (
            (answer.instructions, response.instructions),
            (answer.changed_instructions, response.changed_instructions),
        ):
            for start, stop in chunks.spans(len(instructions)):
                wire.extend(instruction_to_wire(i) for i in instructions[start:stop])
                await chunks.between(stop, len(instructions))
        return response

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
