"""Coalesced forwarding: the RLS requests several callers forward to one owner, in one call.

Wire: the method :data:`METHOD`, whose request and response bodies are the protobuf encoding of
``message Batch { repeated bytes items = 1; }`` (written and read here, no generated module):
the request's items are serialized ``RateLimitRequest`` messages, the response's the serialized
``RateLimitResponse`` of each, aligned. The call carries ``x-ratekeeper-forwarded: 1`` like a
single forwarded call, and every item is answered by the receiver itself, exactly as if it had
come alone (each is planned, cached and counted on its own: no item's ``replaces`` reaches
another's descriptors).

Errors: a body that is no batch is refused ``INVALID_ARGUMENT``; see ``server.refusal``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import grpc
import grpc.aio

from ratekeeper.errors import RequestError
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.protocol.stats import StatsSink
from ratekeeper.server.refusal import answering

__all__ = ["METHOD", "BatchServicer", "add_batch_servicer", "decode", "encode"]

SERVICE = "ratekeeper.v1.ForwardService"
_CALL = "ShouldRateLimitBatch"
#: The batched call's full method name.
METHOD = f"/{SERVICE}/{_CALL}"
_ITEM = b"\x0a"  # field 1, length-delimited


def encode(items: Sequence[bytes]) -> bytes:
    """A batch of ``items``."""
    return b"".join([_ITEM + rls_wire.varint(len(item)) + item for item in items])


def decode(raw: bytes) -> list[bytes]:
    """The items of a batch; raises :class:`~ratekeeper.errors.RequestError` if ``raw`` is no
    batch."""
    items = []
    position, end = 0, len(raw)
    while position < end:
        if raw[position] != _ITEM[0]:
            raise RequestError(f"not a forwarded batch: field key {raw[position]} at {position}")
        position += 1
        length = shift = 0
        while True:
            if position >= end or shift > 63:
                raise RequestError("not a forwarded batch: truncated length")
            byte = raw[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if position + length > end:
            raise RequestError("not a forwarded batch: truncated item")
        items.append(raw[position : position + length])
        position += length
    return items


class BatchServicer:
    """Answers batched forwarded calls with :meth:`RlsDecider.answer_forwarded_many`: every
    item at the same instant of ``clock``, one store call for them all."""

    def __init__(
        self, decider: RlsDecider, stats: StatsSink, clock: Callable[[], int] = time.time_ns
    ) -> None:
        many = decider.answer_forwarded_many

        async def answer(request: bytes, now: int) -> bytes:
            return encode(await many(decode(request), now))

        self.ShouldRateLimitBatch = answering(_CALL, stats, clock, answer)


def add_batch_servicer(servicer: BatchServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` on ``server`` (bytes in, bytes out)."""
    handlers = {_CALL: grpc.unary_unary_rpc_method_handler(servicer.ShouldRateLimitBatch)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
