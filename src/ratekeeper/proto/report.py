"""Typed boundary to the generated ``ratekeeper.v1.ReportService`` code.

protoc's ``*_pb2_grpc`` modules are untyped (so not generated here): clients and the server reach
the RPC only through the helpers here (typed with grpc-stubs and the generated ``.pyi``).
Conversions between the typed values (:class:`~ratekeeper.core.limits.Limit`,
:mod:`ratekeeper.protocol.report_values`, :class:`~ratekeeper.core.instructions.Instruction`)
and their wire forms live here too, written once for both ends; :func:`spec_to_limit` and
:func:`report_from_wire` validate, since specs arrive from untrusted clients.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias, overload

import grpc
import grpc.aio
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import UNIT_BY_SECONDS, Algorithm, Limit
from ratekeeper.errors import LimitParseError, RequestError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.rpc import decoding, unary_call
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer

__all__ = [
    "SERVICE",
    "ReportCall",
    "ReportCallAio",
    "WireKeys",
    "aio_report_call",
    "answer_from_wire",
    "answer_to_wire",
    "instruction_from_wire",
    "instruction_to_wire",
    "lazy_report_from_wire",
    "limit_to_spec",
    "report_call",
    "report_from_wire",
    "report_handler",
    "report_to_wire",
    "spec_to_limit",
]

#: Fully qualified service name, read from the generated descriptor so it is written once.
SERVICE: str = pb.DESCRIPTOR.services_by_name["ReportService"].full_name
_METHOD = f"/{SERVICE}/Report"

# String aliases: grpc's runtime classes are not subscriptable, only their stubs are generic.
ReportCall: TypeAlias = "grpc.UnaryUnaryMultiCallable[pb.ReportRequest, pb.ReportResponse]"
ReportCallAio: TypeAlias = "grpc.aio.UnaryUnaryMultiCallable[pb.ReportRequest, pb.ReportResponse]"
ReportBehaviour: TypeAlias = (
    "Callable[[pb.ReportRequest, grpc.aio.ServicerContext], Awaitable[pb.ReportResponse]]"
)

_ALGORITHM_TO_WIRE: dict[Algorithm, pb.Algorithm.ValueType] = {
    Algorithm.TOKEN_BUCKET: pb.TOKEN_BUCKET,
    Algorithm.FIXED_WINDOW: pb.FIXED_WINDOW,
    Algorithm.SLIDING_WINDOW: pb.SLIDING_WINDOW,
}
_ALGORITHM_FROM_WIRE = {wire: algo for algo, wire in _ALGORITHM_TO_WIRE.items()}
#: Bounds on client-declared limits, so a spec cannot overflow the core's integer maths.
_MAX_AMOUNT = 1 << 40
_MAX_MULTIPLIER = 1 << 20
#: Most entries in each conversion cache below (cleared when full: they refill in a report).
_MAX_CACHED = 1024
#: A wire spec's bytes -> the validated limit it describes (see :func:`spec_to_limit`).
_LIMIT_OF_SPEC: dict[bytes, Limit] = {}
#: Limits -> their serialised ``KeyInstruction.limits`` (see :func:`_limits_wire`).
_WIRE_OF_LIMITS: dict[tuple[Limit, ...], bytes] = {}


def report_call(channel: grpc.Channel) -> ReportCall:
    """The ``Report`` method on a blocking channel."""
    return unary_call(channel, _METHOD, pb.ReportRequest, pb.ReportResponse)


def aio_report_call(channel: grpc.aio.Channel) -> ReportCallAio:
    """The ``Report`` method on an asyncio channel."""
    return unary_call(channel, _METHOD, pb.ReportRequest, pb.ReportResponse)


def report_handler(behaviour: ReportBehaviour) -> grpc.GenericRpcHandler:
    """A handler serving ``behaviour`` as ``ReportService.Report`` on a ``grpc.aio`` server.

    The request is decoded here rather than by grpc, so bytes that are no ``ReportRequest`` are
    answered ``INVALID_ARGUMENT`` (grpc answers a failed deserializer ``UNKNOWN``)."""
    method = decoding(pb.ReportRequest, pb.ReportResponse, behaviour)
    return grpc.method_handlers_generic_handler(SERVICE, {"Report": method})


def limit_to_spec(limit: Limit) -> pb.LimitSpec:
    """The wire form of ``limit``."""
    spec = pb.LimitSpec(
        amount=limit.amount,
        unit_seconds=limit.unit.value,
        multiplier=limit.multiplier,
        algorithm=_ALGORITHM_TO_WIRE[limit.algorithm],
    )
    if limit.burst is not None:
        spec.burst = limit.burst
    return spec


def spec_to_limit(spec: pb.LimitSpec) -> Limit:
    """The limit a wire spec describes; raises :class:`LimitParseError` if it is invalid.

    Every report carries its keys' inline limits and every answer its keys' limits, nearly
    always the same few: each is validated and built once, then looked up by its wire bytes
    (which hold every field it is read from), so equal specs also read as one shared value."""
    wire = spec.SerializeToString()
    limit = _LIMIT_OF_SPEC.get(wire)
    if limit is None:
        limit = _read_spec(spec)
        if len(_LIMIT_OF_SPEC) >= _MAX_CACHED:
            _LIMIT_OF_SPEC.clear()  # bounded: a client sending ever new specs starts it afresh
        _LIMIT_OF_SPEC[wire] = limit
    return limit


def _read_spec(spec: pb.LimitSpec) -> Limit:
    unit = UNIT_BY_SECONDS.get(spec.unit_seconds)
    if unit is None:
        raise LimitParseError(f"unit_seconds {spec.unit_seconds} is not a known unit")
    algorithm = _ALGORITHM_FROM_WIRE.get(spec.algorithm)
    if algorithm is None:
        raise LimitParseError(f"unknown algorithm {spec.algorithm}")
    burst = spec.burst if spec.HasField("burst") else None
    if spec.amount > _MAX_AMOUNT or (burst or 0) > _MAX_AMOUNT:
        raise LimitParseError(f"amount or burst above {_MAX_AMOUNT}")
    if spec.multiplier > _MAX_MULTIPLIER:
        raise LimitParseError(f"multiplier above {_MAX_MULTIPLIER}")
    return Limit(spec.amount, unit, spec.multiplier or 1, burst, algorithm)


def _limits_wire(limits: tuple[Limit, ...]) -> bytes:
    """``limits`` as the ``limits`` field of a ``KeyInstruction``, serialised (built once per
    distinct tuple: an answer names its keys' limits, nearly always the same few)."""
    wire = _WIRE_OF_LIMITS.get(limits)
    if wire is None:
        wire = pb.KeyInstruction(limits=[limit_to_spec(x) for x in limits]).SerializeToString()
        if len(_WIRE_OF_LIMITS) >= _MAX_CACHED:
            _WIRE_OF_LIMITS.clear()
        _WIRE_OF_LIMITS[limits] = wire
    return wire


class WireKeys(Sequence[KeyCounts]):
    """The keys of a ``ReportRequest``, each converted when it is read (so a large report is
    converted chunk by chunk as the report logic walks it, not all at once before it starts).

    Reading a key raises :class:`RequestError` naming it if its inline limit is invalid.
    """

    __slots__ = ("_wire",)

    def __init__(self, wire: RepeatedCompositeFieldContainer[pb.KeyReport]) -> None:
        self._wire = wire

    def __len__(self) -> int:
        return len(self._wire)

    @overload
    def __getitem__(self, index: int) -> KeyCounts: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[KeyCounts]: ...
    def __getitem__(self, index: int | slice) -> KeyCounts | Sequence[KeyCounts]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._wire)))]
        if index < 0:
            index += len(self._wire)
        return _key_from_wire(index, self._wire[index])


def report_from_wire(request: pb.ReportRequest) -> Report:
    """The report ``request`` carries; raises :class:`RequestError` naming a key whose inline
    limit is invalid (the rest is validated by the report logic)."""
    keys = request.keys
    return Report(
        request.client_id,
        tuple([_key_from_wire(i, key) for i, key in enumerate(keys)]) if keys else (),
        request.interval_ns,
        request.sequence,
        *_known_from_wire(request),
    )


def _known_from_wire(
    request: pb.ReportRequest,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]:
    """The compact part of ``request``: packed arrays read in one C call each."""
    if not (request.known_ids or request.known_admitted or request.known_rejected):
        return _NO_KNOWN, _NO_KNOWN, _NO_KNOWN, request.omit_unchanged  # a full-wire report
    return (
        tuple(request.known_ids),
        tuple(request.known_admitted),
        tuple(request.known_rejected),
        request.omit_unchanged,
    )


#: The compact part of a report that has none.
_NO_KNOWN: tuple[int, ...] = ()


def lazy_report_from_wire(request: pb.ReportRequest) -> Report:
    """:func:`report_from_wire` with its keys read as the report logic walks them
    (:class:`WireKeys`): the server's form, so a large report is converted chunk by chunk."""
    return Report(
        request.client_id,
        WireKeys(request.keys),
        request.interval_ns,
        request.sequence,
        *_known_from_wire(request),
    )


def _key_from_wire(index: int, key: pb.KeyReport) -> KeyCounts:
    specs = key.limits
    limits: tuple[Limit, ...] = ()
    if specs:
        try:
            limits = tuple([spec_to_limit(spec) for spec in specs])
        except LimitParseError as exc:
            raise RequestError(f"keys[{index}]: invalid inline limit: {exc}") from exc
    entries = tuple([(e.key, e.value) for e in key.entries])
    return KeyCounts(key.domain, entries, key.admitted, key.rejected, limits, key.key_id)


def report_to_wire(report: Report) -> pb.ReportRequest:
    """The wire form of ``report``."""
    return pb.ReportRequest(
        client_id=report.client_id,
        interval_ns=report.interval_ns,
        sequence=report.sequence,
        keys=[
            pb.KeyReport(
                domain=key.domain,
                entries=[pb.Entry(key=k, value=v) for k, v in key.entries],
                admitted=key.admitted,
                rejected=key.rejected,
                limits=[limit_to_spec(limit) for limit in key.limits],
                key_id=key.key_id,
            )
            for key in report.keys
        ],
        known_ids=report.known_ids,
        known_admitted=report.known_admitted,
        known_rejected=report.known_rejected,
        omit_unchanged=report.omit_unchanged,
    )


def instruction_to_wire(instruction: Instruction) -> pb.KeyInstruction:
    """The wire form of one key's instruction (an unbounded rate is left unset)."""
    rate = instruction.admit_rate
    if math.isinf(rate):
        wire = pb.KeyInstruction(
            reject_for_ns=instruction.reject_for_ns,
            valid_for_ns=instruction.valid_for_ns,
            error=instruction.error,
        )
    else:
        wire = pb.KeyInstruction(
            reject_for_ns=instruction.reject_for_ns,
            admit_rate=rate,
            valid_for_ns=instruction.valid_for_ns,
            error=instruction.error,
        )
    if instruction.limits:
        wire.MergeFromString(_limits_wire(instruction.limits))
    return wire


def instruction_from_wire(wire: pb.KeyInstruction) -> Instruction:
    """One key's instruction from its wire form; raises :class:`LimitParseError` if a limit is
    invalid."""
    rate = wire.admit_rate if wire.HasField("admit_rate") else UNBOUNDED
    limits = tuple(spec_to_limit(spec) for spec in wire.limits)
    return Instruction(wire.reject_for_ns, rate, wire.valid_for_ns, limits, wire.error)


def answer_to_wire(answer: ReportAnswer) -> pb.ReportResponse:
    """The wire form of a report's answer."""
    response = pb.ReportResponse(valid_for_ns=answer.valid_for_ns)
    # only the fields that hold something: most answers are to empty reports (a client's probe)
    if answer.instructions:
        response.instructions.extend([instruction_to_wire(i) for i in answer.instructions])
    if answer.hot:
        response.hot.extend([pb.HotKey(key_hash=h, reject_for_ns=left) for h, left in answer.hot])
    if answer.changed:
        response.changed.extend(answer.changed)
    if answer.changed_instructions:
        response.changed_instructions.extend(
            [instruction_to_wire(i) for i in answer.changed_instructions]
        )
    if answer.unknown_ids:
        response.unknown_ids.extend(answer.unknown_ids)
    if answer.fleet:
        response.fleet, response.slot = answer.fleet, answer.slot
    return response


def answer_from_wire(response: pb.ReportResponse) -> ReportAnswer:
    """A report's answer from its wire form."""
    return ReportAnswer(
        tuple(instruction_from_wire(i) for i in response.instructions),
        tuple((k.key_hash, k.reject_for_ns) for k in response.hot),
        tuple(response.changed),
        tuple(instruction_from_wire(i) for i in response.changed_instructions),
        response.valid_for_ns,
        tuple(response.unknown_ids),
        response.fleet,
        response.slot,
    )
