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

In a cluster the answer also carries the generation of the assignment the member holds, and,
when the report was routed by an older one (or by none), that assignment (a diff when the
client's generation is recent): keys the member does not own were still applied (counted at the
gate as misdirected) and the client routes its next report by what it is sent.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from ratekeeper.core.slices import Generation
from ratekeeper.proto.assignment import generation_from_wire, generation_to_wire, update_to_wire
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2
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
from ratekeeper.server.security import bound_to_peer
from ratekeeper.server.slice_view import SliceView
from ratekeeper.transport.h2.serving import GrpcError

__all__ = [
    "YIELD_BUDGET_NS",
    "YIELD_FROM_KEYS",
    "YIELD_REST_NS",
    "ReportServicer",
    "add_report_servicer",
    "servicer_for",
]

_CALL = "report"
_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
#: Most encoded updates kept for the held generation (one per generation clients send).
_MAX_CACHED_UPDATES = 64

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
        view: SliceView | None = None,
        yield_budget_ns: int = YIELD_BUDGET_NS,
        yield_rest_ns: int = YIELD_REST_NS,
        yield_from_keys: int = YIELD_FROM_KEYS,
    ) -> None:
        """``view``: the member's held assignment (``None``: not in a cluster)."""
        self._processor = processor
        self._view = view
        #: Encoded updates by the generation they bring a client from, for the held generation.
        self._updates: dict[Generation | None, assignment_pb2.AssignmentUpdate | None] = {}
        self._updates_for: Generation | None = None
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._clock = clock
        self._latency = self._stats.timer(_CALL)
        #: Rests a report on the loop once it has run its budget.
        self.budget = TimeBudget(
            yield_budget_ns, yield_rest_ns, time.perf_counter_ns, yield_from_keys
        )
        processor.pause = self.budget
        #: The report listener's port, sent in every answer (0: none; set once it listens).
        self.report_port = 0
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
        response = await self._to_wire(answer)
        if self.report_port:
            response.report_port = self.report_port
        if self._view is not None:
            self._stamp(request, response, self._view)
        return response

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

    def _stamp(
        self, request: pb.ReportRequest, response: pb.ReportResponse, view: SliceView
    ) -> None:
        """The held generation, and the held assignment if the report was routed by an older."""
        held = view.generation
        if held is None:
            return
        response.generation.CopyFrom(generation_to_wire(held))
        known = generation_from_wire(request.generation) if request.HasField("generation") else None
        if known is not None and known >= held:
            return
        if self._updates_for != held:
            self._updates.clear()
            self._updates_for = held
        if known not in self._updates:
            if len(self._updates) >= _MAX_CACHED_UPDATES:
                self._updates.clear()
            update = view.update_for(known)
            self._updates[known] = None if update is None else update_to_wire(update)
        wire = self._updates[known]
        if wire is not None:
            response.assignment.CopyFrom(wire)

    async def Report(
        self, request: pb.ReportRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReportResponse:
        """The gRPC method: :meth:`report` with errors mapped to status codes."""
        start = time.perf_counter()
        try:
            response = await self.report(bound_to_peer(request, context))
        except Exception as exc:
            refused = refusal(exc, self._stats, _CALL)
        else:
            self._latency.observe(time.perf_counter() - start)
            return response
        return await refuse(context, refused, self._latency, start)

    async def report_message(self, message: bytes, peer: str | None = None) -> bytes:
        """The report listener's method: ``message`` (a serialized ``ReportRequest``) applied,
        the serialized answer; refused as :meth:`Report` is, by raising :class:`GrpcError`.
        ``peer``: the client certificate's common name under mTLS (see ``bound_to_peer``)."""
        start = time.perf_counter()
        try:
            request = pb.ReportRequest.FromString(message)
        except DecodeError:
            raise GrpcError(_INVALID_ARGUMENT, "not a ReportRequest") from None
        if peer is not None:
            request.client_id = f"{peer}/{request.client_id}"
        try:
            response = await self.report(request)
        except Exception as exc:
            code, text = refusal(exc, self._stats, _CALL)
            self._latency.observe(time.perf_counter() - start)
            raise GrpcError(code.value[0], text) from exc
        self._latency.observe(time.perf_counter() - start)
        return response.SerializeToString()


#: The one servicer of each processor (it sets the processor's pause): the gRPC port and the
#: report listener serve the same one.
_SERVICERS: weakref.WeakKeyDictionary[ReportProcessor, ReportServicer] = weakref.WeakKeyDictionary()


def servicer_for(
    processor: ReportProcessor,
    stats: StatsSink | None = None,
    clock: Callable[[], int] = time.time_ns,
    view: SliceView | None = None,
) -> ReportServicer:
    """The servicer of ``processor``, made on first use (later arguments are ignored)."""
    servicer = _SERVICERS.get(processor)
    if servicer is None:
        servicer = _SERVICERS[processor] = ReportServicer(processor, stats, clock, view)
    return servicer


def add_report_servicer(servicer: ReportServicer, server: grpc.aio.Server) -> None:
    """Serve ``servicer`` as ``ratekeeper.v1.ReportService`` on ``server``."""
    server.add_generic_rpc_handlers((report_handler(servicer.Report),))
