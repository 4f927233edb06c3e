"""gRPC ``envoy.service.rate_limit_quota.v3.RateLimitQuotaService`` over :class:`RlqsQuotas`.

One bidirectional ``StreamRateLimitQuotas`` stream per Envoy (per server and domain): a reader
task turns each ``RateLimitQuotaUsageReports`` into a typed
:class:`~ratekeeper.protocol.rlqs_values.Usage`, the quotas apply it at the clock's time, and
the answer is queued on the stream's outbox, which the handler writes out. One pusher task,
running while any stream is open, sleeps until :meth:`RlqsQuotas.due` (or until a report or a
closed stream wakes it) and queues the :class:`~ratekeeper.protocol.rlqs_values.Push` es of
:meth:`RlqsQuotas.refresh` on the streams they name: assignments pushed unasked when a shared
bucket's share changes or a denied counter has refilled.

A stream that ends (Envoy gone, or reconnecting) hands its shares back. A malformed report ends
the stream with ``INVALID_ARGUMENT`` (Envoy reopens it on its next report); a store that fails
leaves the report unanswered (Envoy keeps its assignments until they expire: fail open);
anything unexpected ends the stream with ``INTERNAL`` and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import grpc
import grpc.aio
from envoy.service.rate_limit_quota.v3 import rlqs_pb2
from envoy.type.v3 import ratelimit_strategy_pb2, token_bucket_pb2
from google.protobuf.duration_pb2 import Duration

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.errors import BackendError
from ratekeeper.protocol.rlqs import RlqsQuotas
from ratekeeper.protocol.rlqs_values import (
    Blanket,
    BucketAction,
    BucketUsage,
    Usage,
)
from ratekeeper.protocol.stats import Event, MemoryStats, StatsSink
from ratekeeper.server.refusal import refusal

__all__ = [
    "SERVICE_NAME",
    "RlqsServicer",
    "actions_to_wire",
    "add_rlqs_servicer",
    "usage_from_wire",
]

log = logging.getLogger(__name__)

SERVICE_NAME: str = rlqs_pb2.DESCRIPTOR.services_by_name["RateLimitQuotaService"].full_name
_CALL = "StreamRateLimitQuotas"
_Response = rlqs_pb2.RateLimitQuotaResponse
_Strategy = ratelimit_strategy_pb2.RateLimitStrategy
_BLANKET = {Blanket.ALLOW_ALL: _Strategy.ALLOW_ALL, Blanket.DENY_ALL: _Strategy.DENY_ALL}
#: An outbox item: a response to write, or the status the stream ends with (``None``: OK).
_Item: TypeAlias = "rlqs_pb2.RateLimitQuotaResponse | tuple[grpc.StatusCode, str] | None"


def usage_from_wire(report: rlqs_pb2.RateLimitQuotaUsageReports) -> Usage:
    """The typed report; bucket maps become sorted pairs, ``time_elapsed`` is not checked."""
    return Usage(
        report.domain,
        tuple(
            BucketUsage(
                tuple(sorted(u.bucket_id.bucket.items())),
                u.num_requests_allowed,
                u.num_requests_denied,
                u.time_elapsed.ToNanoseconds(),
            )
            for u in report.bucket_quota_usages
        ),
    )


def _duration(ns: int) -> Duration:
    return Duration(seconds=ns // NS_PER_SECOND, nanos=ns % NS_PER_SECOND)


def actions_to_wire(actions: tuple[BucketAction, ...]) -> rlqs_pb2.RateLimitQuotaResponse:
    """One response carrying ``actions``."""
    response = _Response()
    for action in actions:
        wire = response.bucket_action.add()
        wire.bucket_id.bucket.update(dict(action.bucket))
        strategy = action.strategy
        if strategy is None:
            wire.abandon_action.SetInParent()
            continue
        assignment = wire.quota_assignment_action
        assignment.assignment_time_to_live.CopyFrom(_duration(action.ttl_ns))
        if isinstance(strategy, Blanket):
            assignment.rate_limit_strategy.blanket_rule = _BLANKET[strategy]
        else:
            assignment.rate_limit_strategy.token_bucket.CopyFrom(
                token_bucket_pb2.TokenBucket(
                    max_tokens=strategy.max_tokens,
                    tokens_per_fill={"value": strategy.tokens_per_fill},
                    fill_interval=_duration(strategy.fill_interval_ns),
                )
            )
    return response


class RlqsServicer:
    """``StreamRateLimitQuotas`` on the event loop, applied at ``clock``'s time."""

    def __init__(
        self,
        quotas: RlqsQuotas,
        stats: StatsSink | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._quotas = quotas
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._clock = clock
        self._latency = self._stats.timer(_CALL)
        self._outboxes: dict[int, asyncio.Queue[_Item]] = {}
        self._wake = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None
        self._last_store_log = -NS_PER_SECOND

    @property
    def streams(self) -> int:
        """Streams open now."""
        return len(self._outboxes)

    async def StreamRateLimitQuotas(
        self,
        requests: AsyncIterator[rlqs_pb2.RateLimitQuotaUsageReports],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """The gRPC method: reads reports, writes answers and pushes until either side ends."""
        stream = self._quotas.open_stream()
        outbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._outboxes[stream] = outbox
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_loop())
        reader = asyncio.create_task(self._read(stream, requests, outbox))
        try:
            while True:
                item = await outbox.get()
                if item is None:
                    return
                if isinstance(item, tuple):
                    await context.abort(*item)
                await context.write(item)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            del self._outboxes[stream]
            self._quotas.close_stream(stream, self._clock())
            self._wake.set()
            if not self._outboxes and self._pusher is not None:
                self._pusher.cancel()
                self._pusher = None

    async def _read(
        self,
        stream: int,
        requests: AsyncIterator[rlqs_pb2.RateLimitQuotaUsageReports],
        outbox: asyncio.Queue[_Item],
    ) -> None:
        try:
            async for report in requests:
                start = time.perf_counter()
                try:
                    usage = usage_from_wire(report)
                    actions = await self._quotas.report(stream, usage, self._clock())
                except BackendError as exc:
                    self._store_failed(exc)
                    continue
                self._latency.observe(time.perf_counter() - start)
                if log.isEnabledFor(logging.DEBUG):  # evidence for failure modes (docs/envoy.md)
                    log.debug("RLQS stream %d report %s answered %s", stream, usage, actions)
                if actions:
                    outbox.put_nowait(actions_to_wire(actions))
                self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outbox.put_nowait(refusal(exc, self._stats, _CALL))
            return
        outbox.put_nowait(None)  # Envoy half-closed its side

    async def _push_loop(self) -> None:
        """Queue the pushes :meth:`RlqsQuotas.refresh` returns, whenever they fall due."""
        while True:
            due = self._quotas.due()
            timeout = None if due is None else max(0.0, (due - self._clock()) / NS_PER_SECOND)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                pushes = await self._quotas.refresh(self._clock())
            except BackendError as exc:
                self._store_failed(exc)
                await asyncio.sleep(1.0)  # due again at once: do not spin on a failing store
                continue
            for push in pushes:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("RLQS push %s", push)
                outbox = self._outboxes.get(push.stream)
                if outbox is not None:
                    outbox.put_nowait(actions_to_wire(push.actions))

    def _store_failed(self, exc: Exception) -> None:
        self._stats.count(Event.STORE_ERROR)
        now = self._clock()
        if now - self._last_store_log >= NS_PER_SECOND:  # one line a second, not per report
            self._last_store_log = now
            log.warning("store error, RLQS report left unanswered: %s", exc)


def add_rlqs_servicer(servicer: RlqsServicer, server: grpc.aio.Server) -> None:
    """Serve ``servicer`` as ``RateLimitQuotaService`` on ``server``."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.StreamRateLimitQuotas,
        request_deserializer=rlqs_pb2.RateLimitQuotaUsageReports.FromString,
        response_serializer=rlqs_pb2.RateLimitQuotaResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {_CALL: handler}),)
    )
