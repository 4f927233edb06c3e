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
from typing import Any, NoReturn

import grpc
import grpc.aio

from ratekeeper.errors import BackendError, RequestError
from ratekeeper.protocol.stats import Event, StatsSink, Timer

__all__ = ["refusal", "refuse"]

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
