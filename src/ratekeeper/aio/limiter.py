"""``ratekeeper.aio.Limiter``: the asyncio twin of ``ratekeeper.Limiter``.

Same machine, same decisions (``allow`` and ``acquire`` stay plain methods: a local decision has
nothing to await), same cycle; the reporter is a task on the running loop that only does I/O
(``grpc.aio``, all servers' reports in flight at once) and sleeping.

The task starts when the limiter is built inside a running loop, or at ``async with`` /
:meth:`Limiter.start` otherwise; :meth:`Limiter.close` sends the last counts. A second task
makes the ``Watch`` calls the machine's :class:`~ratekeeper.client.clerk.Clerk` asks for, over the
same channel per server.
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
from ratekeeper.client.driving import RECONNECT, Peers, watch_error
from ratekeeper.client.machine import Outbound
from ratekeeper.client.report_routes import ReportRoutes
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.cluster import AssignerCallsAio, aio_assigner_calls
from ratekeeper.proto.report import ReportCallAio, aio_report_call
from ratekeeper.transport.channels import describe_error, open_aio_channel

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(BaseLimiter):
    """A batch-reporting rate limiter for asyncio; the arguments are ``ratekeeper.Limiter``'s."""

    def _start(self) -> None:
        self._peers = Peers(self._open_peer)
        self._routes: ReportRoutes[grpc.aio.Channel, ReportCallAio] = ReportRoutes(
            self._open_listener
        )
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._cycle_lock = asyncio.Lock()
        self._closed = False
        with contextlib.suppress(RuntimeError):  # no running loop: start() later
            asyncio.get_running_loop()
            self._spawn()

    async def start(self) -> None:
        """Start reporting on the running loop (done already if built inside one)."""
        if self._task is None and not self._closed:
            self._spawn()

    def _spawn(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ratekeeper-reporter")
        self._watcher = asyncio.create_task(self._watch(), name="ratekeeper-watch")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until :attr:`ready` (at most ``timeout`` seconds); whether it is."""
        deadline = time.monotonic() + timeout
        while not self.ready and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(left, 0.005))
        return self.ready

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

    async def _watch(self) -> None:
        clerk = self._machine.clerk
        while True:
            now = time.monotonic_ns()
            call = clerk.next_watch(now)
            if call is None:
                return
            await asyncio.sleep(max(0, call.at - now) / NS_PER_SECOND)
            try:
                response = await self._peers.get(call.address)[2].watch(
                    call.request, timeout=call.timeout
                )
            except Exception as exc:
                watch_error(clerk, call.address, exc)
            else:
                clerk.watched(call.address, response, time.monotonic_ns())

    async def flush(self) -> None:
        """Report now and apply the answers."""
        async with self._cycle_lock:
            await self._cycle()

    async def _cycle(self) -> None:
        machine = self._machine
        outbound = machine.collect(time.monotonic_ns())
        await asyncio.gather(*(self._send(out) for out in outbound))
        for channel, _report, _assigner in self._peers.unwanted(machine):
            await channel.close(None)
        await _close(self._routes.forget(self._peers.addresses()))

    async def _send(self, out: Outbound) -> None:
        machine, routes = self._machine, self._routes
        listener = routes.call(out.address)  # a server's report listener once one is named
        call = self._peers.get(out.address)[1] if listener is None else listener
        try:
            answer = await call(out.request, timeout=out.timeout)
        except grpc.aio.AioRpcError as exc:
            if listener is not None:
                await _close(routes.failed(out.address, exc.code(), time.monotonic_ns()))
            machine.failed(out.address, describe_error(exc), time.monotonic_ns())
        else:
            now = time.monotonic_ns()
            machine.answered(out.address, answer, now)
            await _close(routes.heard(out.address, answer.report_port, now, listener is not None))

    def _open_listener(self, target: str) -> tuple[grpc.aio.Channel, ReportCallAio]:
        """The channel to a server's report listener, secured as its address's, and Report."""
        channel = open_aio_channel(target, RECONNECT, tls=self._tls, token=self._auth_token)
        return channel, aio_report_call(channel)

    def _open_peer(self, address: str) -> tuple[grpc.aio.Channel, ReportCallAio, AssignerCallsAio]:
        """The channel to ``address`` and its calls."""
        channel = open_aio_channel(address, RECONNECT, tls=self._tls, token=self._auth_token)
        return channel, aio_report_call(channel), aio_assigner_calls(channel)

    async def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._machine.clerk.close()
        tasks = [task for task in (self._task, self._watcher) if task is not None]
        async with self._cycle_lock:  # a cycle in flight finishes: its answers are applied
            for task in tasks:
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        machine = self._machine
        machine.close()
        async with self._cycle_lock:
            while machine.due(time.monotonic_ns()) is not None:
                await self._cycle()
        for channel, _report, _assigner in self._peers.clear():
            await channel.close(None)
        await _close(self._routes.forget(set()))
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


async def _close(channels: list[grpc.aio.Channel]) -> None:
    for channel in channels:
        await channel.close(None)
