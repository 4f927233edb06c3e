"""The asyncio driver of an :class:`~ratekeeper.assigner.election.Election`.

It carries out what the machine asks (one call at a time, each bounded by a timeout), sleeps
until the machine's next deadline, and tells listeners when this assigner starts or stops
leading. Writes of the leader go through :meth:`Leadership.save`, fenced by the revision of its
leadership, so a deposed leader's write is refused by the coordination service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from ratekeeper.assigner.coordination import Coordination
from ratekeeper.assigner.election import (
    Action,
    Campaign,
    Election,
    ElectionSettings,
    Grant,
    KeepAlive,
    Leader,
    Resign,
)
from ratekeeper.errors import CoordinationError

_log = logging.getLogger(__name__)

#: No call to the coordination service may hold the driver longer than this.
CALL_TIMEOUT_S: Final = 3.0

_T = TypeVar("_T")
LeadingChanged = Callable[[bool], Awaitable[None]]


class Leadership:
    """One assigner's part in the election, run as a task between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        coordination: Coordination,
        name: str,
        settings: ElectionSettings | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._coordination = coordination
        self._election = Election(name, settings or ElectionSettings())
        self._clock = clock
        self._listeners: list[LeadingChanged] = []
        self._was_leading = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._election.name

    @property
    def leading(self) -> bool:
        return self._election.leading(self._clock())

    @property
    def leader(self) -> Leader | None:
        """The leader as last seen (for followers to redirect to), or None."""
        return self._election.leader

    def listen(self, listener: LeadingChanged) -> None:
        """Call ``listener(leading)`` on every change, in order, from the driver's task."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"election {self.name}")

    async def stop(self, resign: bool = True) -> None:
        """Stop campaigning; with ``resign``, revoke the lease so a standby takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        action = self._election.resign() if resign else None
        if action is not None:
            with contextlib.suppress(CoordinationError, TimeoutError):
                await asyncio.wait_for(self._coordination.revoke(action.lease), CALL_TIMEOUT_S)
        await self._notify()

    @property
    def fence(self) -> int | None:
        """The revision fencing this leadership's writes, while it leads."""
        return self._election.fence(self._clock())

    async def abdicate(self) -> None:
        """Give up the lead now (the lease is revoked) and stand again later. Call it from a
        listener: it runs in the driver's task, between calls."""
        action = self._election.abdicate(self._clock())
        if action is not None:
            with contextlib.suppress(CoordinationError, TimeoutError):
                await asyncio.wait_for(self._coordination.revoke(action.lease), CALL_TIMEOUT_S)

    async def save(self, data: bytes, fence: int) -> bool:
        """Store ``data`` if the leader key still has the create revision ``fence`` (the term
        that decided it); False when refused or unreachable. Not checked locally on purpose:
        the coordination service is the judge, whatever this process's clock says."""
        try:
            return await asyncio.wait_for(self._coordination.save(data, fence), CALL_TIMEOUT_S)
        except (CoordinationError, TimeoutError) as error:
            _log.warning("storing the assignment failed: %s", error)
            return False

    async def load(self) -> bytes | None:
        """The last stored assignment (raises CoordinationError when unreachable)."""
        try:
            return await asyncio.wait_for(self._coordination.load(), CALL_TIMEOUT_S)
        except TimeoutError as error:
            raise CoordinationError("loading the assignment timed out") from error

    async def _run(self) -> None:
        while True:
            now = self._clock()
            action = self._election.poll(now)
            if action is not None:
                await self._carry_out(action, now)
            else:
                await self._sleep_until(self._election.next_deadline(now), now)
            await self._notify()

    async def _carry_out(self, action: Action, sent_at: int) -> None:
        election, coordination = self._election, self._coordination
        try:
            if isinstance(action, Grant):
                lease, ttl = await self._bounded(coordination.grant(action.ttl_s))
                election.granted(sent_at, lease, ttl)
            elif isinstance(action, KeepAlive):
                election.kept_alive(
                    sent_at, await self._bounded(coordination.keep_alive(action.lease))
                )
            elif isinstance(action, Campaign):
                holder = await self._bounded(coordination.campaign(action.lease, action.name))
                election.campaigned(sent_at, holder)
            elif isinstance(action, Resign):  # pragma: no cover - sent by stop(), not polled
                await self._bounded(coordination.revoke(action.lease))
        except (CoordinationError, TimeoutError) as error:
            _log.warning("election %s: %s failed: %s", self.name, type(action).__name__, error)
            election.failed(self._clock())

    @staticmethod
    async def _bounded(call: Awaitable[_T]) -> _T:
        return await asyncio.wait_for(call, CALL_TIMEOUT_S)

    @staticmethod
    async def _sleep_until(deadline: int | None, now: int) -> None:
        await asyncio.sleep(
            CALL_TIMEOUT_S if deadline is None else max(0.0, (deadline - now) / 1e9)
        )

    async def _notify(self) -> None:
        leading = self.leading
        if leading == self._was_leading:
            return
        self._was_leading = leading
        _log.info("%s %s leading", self.name, "started" if leading else "stopped")
        for listener in self._listeners:
            await listener(leading)
