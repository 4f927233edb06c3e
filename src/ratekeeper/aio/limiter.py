"""``ratekeeper.aio.Limiter``: the asyncio twin of ``ratekeeper.Limiter``.

Same machine, same decisions (``allow`` and ``acquire`` stay plain methods: a local decision has
nothing to await), same cycle; the reporter is a task on the running loop that only does I/O
(``grpc.aio``, all servers' reports in flight at once) and sleeping.

The task starts when the limiter is built inside a running loop, or at ``async with`` /
:meth:`Limiter.start` otherwise; :meth:`Limiter.close` sends the last counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

import grpc
import grpc.aio

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.machine import Outbound
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.report import ReportCallAio, aio_report_call
from ratekeeper.transport.channels import describe_error, open_aio_channel

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(BaseLimiter):
    """A batch-reporting rate limiter for asyncio; the arguments are ``ratekeeper.Limiter``'s."""

    def _start(self) -> None:
        self._channels: dict[str, tuple[grpc.aio.Channel, ReportCallAio]] = {}
        self._task: asyncio.Task[None] | None = None
        self._cycle_lock = asyncio.Lock()
        self._closed = False
        with contextlib.suppress(RuntimeError):  # no running loop: start() later
            asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="ratekeeper-reporter")

    async def start(self) -> None:
        """Start reporting on the running loop (done already if built inside one)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="ratekeeper-reporter")

    async def _run(self) -> None:
        machine = self._machine
        while True:
            now = time.monotonic_ns()
            deadline = machine.due(now)
            if deadline is None:
                return
            await asyncio.sleep(max(0, deadline - now) / NS_PER_SECOND)
            try:
                await self.flush()
            except Exception:  # a bug must not end reporting: decisions would go stale
                log.exception("report cycle failed; the next one runs as scheduled")

    async def flush(self) -> None:
        """Report now and apply the answers."""
        async with self._cycle_lock:
            await self._cycle()

    async def _cycle(self) -> None:
        machine = self._machine
        outbound = machine.collect(time.monotonic_ns())
        await asyncio.gather(*(self._send(out) for out in outbound))
        for address in set(self._channels) - machine.assignment.servers:
            await self._channels.pop(address)[0].close(None)

    async def _send(self, out: Outbound) -> None:
        machine = self._machine
        try:
            answer = await self._call(out.address)(out.request, timeout=out.timeout)
        except grpc.aio.AioRpcError as exc:
            machine.failed(out.address, describe_error(exc), time.monotonic_ns())
        else:
            machine.answered(out.address, answer, time.monotonic_ns())

    def _call(self, address: str) -> ReportCallAio:
        entry = self._channels.get(address)
        if entry is None:
            channel = open_aio_channel(address)
            entry = self._channels[address] = (channel, aio_report_call(channel))
        return entry[1]

    async def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        machine = self._machine
        machine.close()
        async with self._cycle_lock:
            while machine.due(time.monotonic_ns()) is not None:
                await self._cycle()
        for channel, _call in self._channels.values():
            await channel.close(None)
        self._channels.clear()
        self._unregister_metrics()

    async def __aenter__(self) -> Limiter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
