"""How a gRPC servicer refuses a call it cannot answer: one table of errors to status codes.

* :class:`~ratekeeper.errors.RequestError`: ``INVALID_ARGUMENT`` with its message (counted as an
  invalid call);
* :class:`~ratekeeper.errors.BackendError`: ``UNAVAILABLE`` (the store failed; a client falls
  back on what it last heard);
* anything else: ``INTERNAL``, logged with its traceback and counted as a service error, so no
  request can stop the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import grpc
import grpc.aio

from ratekeeper.errors import BackendError, RequestError
from ratekeeper.protocol.stats import Event, StatsSink, Timer

__all__ = ["Answer", "Handler", "answering", "refusal", "refuse"]

log = logging.getLogger(__name__)


def refusal(exc: Exception, stats: StatsSink, call: str) -> tuple[grpc.StatusCode, str]:
    """The status and message ``call`` is refused with for ``exc``; counts it. Call it inside
    the ``except`` block, so an unexpected error is logged with its traceback."""
    if isinstance(exc, RequestError):
        stats.invalid(call)
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, BackendError):
        return grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc}"
    stats.count(Event.SERVICE_ERROR)
    log.exception("%s failed", call)
    return grpc.StatusCode.INTERNAL, "internal error"


async def refuse(
    context: grpc.aio.ServicerContext[Any, Any],
    refused: tuple[grpc.StatusCode, str],
    timer: Timer,
    start: float,
) -> NoReturn:
    """Time the call begun at ``start`` (``time.perf_counter``), then abort it."""
    # Timed before aborting: the caller sees the status as soon as abort sends it, and a scrape
    # right after must already count this call.
    timer.observe(time.perf_counter() - start)
    await context.abort(*refused)
    raise AssertionError("unreachable: abort raises")


#: A call's answer: its response's bytes from its request's, decided at an instant (ns).
Answer: TypeAlias = Callable[[bytes, int], Awaitable[bytes]]
#: A bytes-in, bytes-out gRPC method.
Handler: TypeAlias = Callable[[bytes, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[bytes]]


def answering(
    call: str,
    stats: StatsSink,
    clock: Callable[[], int],
    answer: Answer,
    *,
    pick: Callable[[grpc.aio.ServicerContext[Any, Any]], Answer] | None = None,
) -> Handler:
    """The method ``call``: ``answer(request, clock())``, timed by ``stats``, refused as
    :func:`refusal` says when it raises. ``pick``: chooses the answer per call instead (a
    cluster member's, by the call's metadata)."""
    latency = stats.timer(call)

    async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        start = time.perf_counter()
        chosen = answer if pick is None else pick(context)
        try:
            answered = await chosen(request, clock())
        except Exception as exc:
            refused = refusal(exc, stats, call)
        else:
            latency.observe(time.perf_counter() - start)
            return answered
        return await refuse(context, refused, latency, start)

    return handle
