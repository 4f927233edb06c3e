"""Typed boundary to the generated ``ratekeeper.v1.HandoffService`` code.

A hand-off travels as one or more ``Transfer`` calls, each carrying a :class:`Transfer`: the
range handed off, the sender, the generation that moved it, and a bounded part (a chunk) of the
sender's :class:`~ratekeeper.backends.store.Snapshot` of it. :func:`transfer_chunks` cuts a
snapshot into wire messages of at most a given size; :func:`transfer_from_wire` validates what
another process sent (a range, chunk numbers that add up, every counter a well-formed state of
its limit with its key hash inside the range) and raises :class:`~ratekeeper.errors.RequestError`
otherwise, which :func:`handoff_handler` answers ``INVALID_ARGUMENT``. As for the other
services, no ``*_pb2_grpc`` module: the callable and the handler are made here, typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

import grpc
import grpc.aio

from ratekeeper.backends.store import Counter, CounterSnapshot, Snapshot
from ratekeeper.backends.transfer import restored
from ratekeeper.core.slices import Generation, Slice
from ratekeeper.errors import LimitParseError, RequestError
from ratekeeper.proto.assignment import (
    generation_from_wire,
    generation_to_wire,
    high_to_wire,
    slice_from_wire,
)
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.proto.ratekeeper.v1 import report_pb2
from ratekeeper.proto.report import limit_to_spec, spec_to_limit
from ratekeeper.proto.rpc import decoding, unary_call

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SERVICE",
    "Transfer",
    "TransferBehaviour",
    "TransferCallAio",
    "aio_transfer_call",
    "handoff_handler",
    "transfer_chunks",
    "transfer_from_wire",
]

#: Fully qualified service name, read from the generated descriptor so it is written once.
SERVICE: str = pb.DESCRIPTOR.services_by_name["HandoffService"].full_name
_METHOD = f"/{SERVICE}/Transfer"
#: Largest chunk :func:`transfer_chunks` makes by default: a quarter of gRPC's default 4 MiB
#: receive limit, so a chunk always fits whatever the receiver's settings.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
#: Most bytes one state field may take on the wire (a 128-bit signed integer).
_MAX_FIELD_BYTES = 16
#: Most state fields a counter has (the sliding window's three).
_MAX_FIELDS = 3
#: Most cold ranges one transfer may carry (a store keeps at most 4096).
_MAX_COLD = 4096

TransferCallAio: TypeAlias = (
    "grpc.aio.UnaryUnaryMultiCallable[pb.TransferRequest, pb.TransferResponse]"
)
TransferBehaviour: TypeAlias = (
    "Callable[[pb.TransferRequest, grpc.aio.ServicerContext], Awaitable[pb.TransferResponse]]"
)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One call of a hand-off: a chunk of the sender's snapshot of one range."""

    #: The generation of the assignment that moved the range.
    generation: Generation
    #: The sender's serving address.
    source: str
    #: The range handed off, and this chunk's counters (their instants as ages).
    snapshot: Snapshot
    #: This call's place among the range's calls: ``chunk`` in ``[0, chunks)``.
    chunk: int
    chunks: int
    #: A late pass (counters created after the hand-off, to be added, not merged).
    late: bool = False

    @property
    def slice(self) -> Slice:
        """The range handed off."""
        return Slice(self.snapshot.low, self.snapshot.high)


def aio_transfer_call(channel: grpc.aio.Channel) -> TransferCallAio:
    """The ``Transfer`` method on an asyncio channel (use from the loop that opened it)."""
    return unary_call(channel, _METHOD, pb.TransferRequest, pb.TransferResponse)


def handoff_handler(behaviour: TransferBehaviour) -> grpc.GenericRpcHandler:
    """A handler serving ``behaviour`` as ``HandoffService.Transfer`` on a ``grpc.aio`` server.

    Bytes that are not a ``TransferRequest`` are answered ``INVALID_ARGUMENT`` (grpc would
    answer a failed deserializer ``UNKNOWN``); so is any :class:`RequestError` the behaviour
    raises (a request :func:`transfer_from_wire` refuses).
    """
    method = decoding(pb.TransferRequest, pb.TransferResponse, behaviour, refused=(RequestError,))
    return grpc.method_handlers_generic_handler(SERVICE, {"Transfer": method})


def _counter_to_wire(snapshot: CounterSnapshot) -> pb.CounterState:
    counter = snapshot.counter
    return pb.CounterState(
        domain=counter.domain,
        entries=[report_pb2.Entry(key=k, value=v) for k, v in counter.entries],
        limit=limit_to_spec(counter.limit),
        state=[_int_to_bytes(v) for v in snapshot.state],
    )


def transfer_chunks(
    generation: Generation,
    source: str,
    snapshot: Snapshot,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    late: bool = False,
) -> list[pb.TransferRequest]:
    """The wire calls carrying ``snapshot``, each at most about ``max_bytes`` long (a chunk
    holds at least one counter, so a single counter larger than that travels alone). An empty
    snapshot is one call with no counters: the receiver still learns the range is complete."""
    groups = list(_grouped((_counter_to_wire(c) for c in snapshot.counters), max_bytes)) or [[]]
    cold = [
        pb.ColdRange(low=lo, high=high_to_wire(hi), age_ns=age) for lo, hi, age in snapshot.cold
    ]
    return [
        pb.TransferRequest(
            generation=generation_to_wire(generation),
            source=source,
            low=snapshot.low,
            high=high_to_wire(snapshot.high),
            chunk=i,
            chunks=len(groups),
            counters=group,
            cold=cold,
            late=late,
        )
        for i, group in enumerate(groups)
    ]


def _grouped(states: Iterator[pb.CounterState], max_bytes: int) -> Iterator[list[pb.CounterState]]:
    group: list[pb.CounterState] = []
    size = 0
    for state in states:
        # Each repeated field element costs its length, a tag and a length prefix.
        cost = state.ByteSize() + 6
        if group and size + cost > max_bytes:
            yield group
            group, size = [], 0
        group.append(state)
        size += cost
    if group:
        yield group


def transfer_from_wire(wire: pb.TransferRequest) -> Transfer:
    """The transfer ``wire`` carries; raises :class:`RequestError` saying what is malformed."""
    try:
        piece = slice_from_wire(wire.low, wire.high)
    except ValueError as exc:
        raise RequestError(f"transfer: {exc}") from None
    if not wire.source:
        raise RequestError("transfer: no source address")
    if not 0 <= wire.chunk < wire.chunks:
        raise RequestError(f"transfer: chunk {wire.chunk} of {wire.chunks}")
    counters = tuple(_counter_from_wire(i, c, piece) for i, c in enumerate(wire.counters))
    if len(wire.cold) > _MAX_COLD:
        raise RequestError(f"transfer: more than {_MAX_COLD} cold ranges")
    cold = tuple(_cold_from_wire(c, piece) for c in wire.cold)
    return Transfer(
        generation_from_wire(wire.generation),
        wire.source,
        Snapshot(piece.low, piece.high, counters, cold),
        wire.chunk,
        wire.chunks,
        wire.late,
    )


def _cold_from_wire(wire: pb.ColdRange, piece: Slice) -> tuple[int, int, int]:
    try:
        part = slice_from_wire(wire.low, wire.high)
    except ValueError as exc:
        raise RequestError(f"transfer: cold {exc}") from None
    if not piece.low <= part.low < part.high <= piece.high:
        raise RequestError(f"transfer: cold range [{part.low}, {part.high}) is outside the range")
    return (part.low, part.high, wire.age_ns)


def _counter_from_wire(index: int, wire: pb.CounterState, piece: Slice) -> CounterSnapshot:
    try:
        limit = spec_to_limit(wire.limit)
    except LimitParseError as exc:
        raise RequestError(f"transfer: counter {index}: {exc}") from None
    counter = Counter(wire.domain, tuple((e.key, e.value) for e in wire.entries), limit)
    if counter.key_hash not in piece:
        raise RequestError(f"transfer: counter {index} ({counter.domain}) is outside the range")
    if len(wire.state) > _MAX_FIELDS or any(len(v) > _MAX_FIELD_BYTES for v in wire.state):
        raise RequestError(f"transfer: counter {index}: state too large")
    state = tuple(int.from_bytes(v, "big", signed=True) for v in wire.state)
    try:
        restored(limit, state, 0)  # the same check the importer makes, before anything is taken
    except ValueError as exc:
        raise RequestError(f"transfer: counter {index}: {exc}") from None
    return CounterSnapshot(counter, state)


def _int_to_bytes(value: int) -> bytes:
    # The shortest two's-complement form: one bit more than the magnitude needs, for the sign.
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
