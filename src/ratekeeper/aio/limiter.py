"""``ratekeeper.aio.Limiter``: the asyncio twin of ``ratekeeper.Limiter``.

Same state, same decisions (``allow`` and ``acquire`` stay plain methods: a local decision has
nothing to await), same report cycle; the reporter is a task on the running loop and the calls
go through ``grpc.aio``, all servers' reports in flight at once.

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

from ratekeeper.client.state import Batch, LimiterState
from ratekeeper.proto.report import ReportCallAio, aio_report_call

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(LimiterState):
    """A batch-reporting rate limiter for asyncio; see ``ratekeeper.Limiter``."""

    def _start(self) -> None:
        self._channels: dict[str, tuple[grpc.aio.Channel, ReportCallAio]] = {}
        self._task: asyncio.Task[None] | None = None
        self._cycle = asyncio.Lock()
        with contextlib.suppress(RuntimeError):  # no running loop: start() later
            asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="ratekeeper-reporter")

    async def start(self) -> None:
        """Start reporting on the running loop (done already if built inside one)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ratekeeper-reporter")

    async def _run(self) -> None:
        interval = self.report_interval
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            try:
                await self.flush()
            except Exception:  # a bug must not end reporting: decisions would go stale
                log.exception("report cycle failed; next one in %.3fs", interval)
            # a cycle that overran skips the ticks it missed rather than bursting to catch up
            next_at = max(next_at + interval, time.monotonic())

    async def flush(self) -> None:
        """Report now and apply the answers."""
        async with self._cycle:
            batches = self.collect(time.monotonic_ns())
            await asyncio.gather(*(self._send(batch) for batch in batches))
            for server in set(self._channels) - self.assignment.servers:
                await self._channels.pop(server)[0].close(None)

    async def _send(self, batch: Batch) -> None:
        call = self._call(batch.server)
        try:
            response = await call(batch.request, timeout=self.timeout)
        except grpc.aio.AioRpcError:
            self.failed(batch)
        else:
            self.apply(batch, response, time.monotonic_ns())

    def _call(self, server: str) -> ReportCallAio:
        entry = self._channels.get(server)
        if entry is None:
            channel = grpc.aio.insecure_channel(server)
            entry = self._channels[server] = (channel, aio_report_call(channel))
        return entry[1]

    async def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._closed:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.mark_closed()
        for _ in self.closing_rounds():
            await self.flush()
        for channel, _call in self._channels.values():
            await channel.close(None)
        self._channels.clear()

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
