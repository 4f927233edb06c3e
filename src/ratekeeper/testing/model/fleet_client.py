"""The one place the model touches the client: today's :class:`LimiterState`, on virtual time.

The model needs four things of a client: decide a hit at an instant, build this cycle's reports,
take an answer, take a failure. Everything else the fleet loop does goes through
:class:`FleetClient`, so retargeting the model onto another client state machine (a passive
``LimiterMachine`` with ``collect`` / ``answered`` / ``failed``) means rewriting this module only.

``LimiterState.allow`` reads ``monotonic_ns`` from its own module; :func:`virtual_time` swaps that
name for the model's clock while a simulation runs (single-threaded, restored on exit). A state
machine that takes its clock as an argument needs no such swap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ratekeeper.client import state as client_state
from ratekeeper.client.state import Batch, LimiterState
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["CLIENT_EPOCH_NS", "FleetClient", "Outbound", "virtual_time"]

#: Where client clocks start: far enough from 0 that a fresh key's ``earliest = 0`` is the past.
CLIENT_EPOCH_NS = 1000 * NS_PER_SECOND


#: The clock ``LimiterState`` reads, by its name in that module.
_CLOCK_NAME = "monotonic_ns"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One report on its way to the server, and what its answer must be handed back with."""

    request: pb.ReportRequest
    handle: Batch


@contextlib.contextmanager
def virtual_time(clock: Callable[[], int]) -> Iterator[None]:
    """Make every ``LimiterState`` read ``clock`` (virtual ns) instead of the monotonic clock."""
    saved = getattr(client_state, _CLOCK_NAME)
    setattr(client_state, _CLOCK_NAME, clock)
    try:
        yield
    finally:
        setattr(client_state, _CLOCK_NAME, saved)


class FleetClient:
    """One client of the fleet: the production state machine, with no driver around it."""

    __slots__ = ("_state", "interval_ns", "timeout_ns")

    def __init__(self, client_id: str, limit: str, report_interval_s: float) -> None:
        self._state = LimiterState(
            "model-server:1", limit=limit, report_interval=report_interval_s, client_id=client_id
        )
        self.interval_ns = round(report_interval_s * NS_PER_SECOND)
        #: A report not answered within this long has failed (the real driver's deadline).
        self.timeout_ns = round(self._state.timeout * NS_PER_SECOND)

    def decide(self, key: str) -> bool:
        """Admit one hit for ``key`` now (the clock installed by :func:`virtual_time`)."""
        return self._state.allow(key)

    def collect(self, now: int) -> list[Outbound]:
        """This cycle's reports."""
        return [Outbound(b.request, b) for b in self._state.collect(now)]

    def answered(self, sent: Outbound, answer: pb.ReportResponse, now: int) -> None:
        self._state.apply(sent.handle, answer, now)

    def failed(self, sent: Outbound, now: int) -> None:
        self._state.failed(sent.handle)

    @property
    def tracked(self) -> int:
        return self._state.tracked
