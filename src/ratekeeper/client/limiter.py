"""``ratekeeper.Limiter``: local decisions, reported in the background by a daemon thread.

The thread only does I/O and sleeping; what to send, to whom and when is the
:class:`~ratekeeper.client.machine.LimiterMachine`'s. Each cycle sends at most one ``Report`` per
owning server, all in flight at once, each with a deadline well under the interval. A slow or
dead server costs the reporter at most its deadline per cycle; its keys keep their last
instructions until they expire (fail open, loudly: see ``ready``, ``stats`` and the log).

The reporter holds a lock of its own while it runs a cycle (so ``flush()`` from another thread
cannot interleave with it); the decision path never takes it.

A second daemon thread keeps the assignment current: it makes the ``Watch`` calls the machine's
:class:`~ratekeeper.client.clerk.Clerk` asks for (a long poll; none for a static assignment or a
single server). Both threads share one channel per server (cached, closed once the server leaves
the assignment and is not being watched).
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import grpc

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.driving import RECONNECT, Peers, watch_error
from ratekeeper.client.report_routes import ReportRoutes
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.cluster import AssignerCalls, assigner_calls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as cpb
from ratekeeper.proto.report import ReportCall, report_call
from ratekeeper.transport.channels import describe_error, open_channel

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(BaseLimiter):
    """A batch-reporting rate limiter; the asyncio twin is :class:`ratekeeper.aio.Limiter`."""

    def _start(self) -> None:
        self._peers = Peers(self._open_peer)
        self._routes: ReportRoutes[grpc.Channel, ReportCall] = ReportRoutes(self._open_listener)
        self._cycle_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratekeeper-reporter", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="ratekeeper-watch", daemon=True)
        self._watch_call: grpc.Future[cpb.WatchResponse] | None = None
        self.start()

    def start(self) -> None:
        """Start reporting (done already by the constructor; the asyncio twin needs a loop)."""
        if self._thread.ident is None:
            self._thread.start()
            self._watcher.start()

    def wait_ready(self, timeout: float) -> bool:
        """Block until :attr:`ready` (at most ``timeout`` seconds); whether it is."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.wait(min(left, 0.005)):
                return self.ready
        return True

    def _run(self) -> None:
        machine = self._machine
        while True:
            now = time.monotonic_ns()
            deadline = machine.due(now)
            if deadline is None or self._stop.wait(max(0, deadline - now) / NS_PER_SECOND):
                return
            try:
                self.flush()
            except Exception:  # a bug must not end reporting: decisions would go stale
                log.exception("report cycle failed; the next one runs as scheduled")

    def _watch(self) -> None:
        clerk = self._machine.clerk
        while True:
            now = time.monotonic_ns()
            call = clerk.next_watch(now)
            if call is None or self._stop.wait(max(0, call.at - now) / NS_PER_SECOND):
                return
            watch = self._peers.get(call.address)[2].watch
            future = watch.future(call.request, timeout=call.timeout)
            self._watch_call = future
            if self._stop.is_set():  # close() may have cancelled the previous call only
                _cancel(future)
            try:
                response = future.result()
            except grpc.FutureCancelledError:
                return
            except Exception as exc:
                watch_error(clerk, call.address, exc)
            else:
                clerk.watched(call.address, response, time.monotonic_ns())

    def flush(self) -> None:
        """Report now, on the calling thread, and apply the answers."""
        with self._cycle_lock:
            self._cycle()

    def _cycle(self) -> None:
        machine = self._machine
        outbound = machine.collect(time.monotonic_ns())
        routes = self._routes
        futures = []
        for out in outbound:  # to each server's report listener once an answer named one
            listener = routes.call(out.address)
            call = self._peers.get(out.address)[1] if listener is None else listener
            futures.append((out.address, listener, call.future(out.request, timeout=out.timeout)))
        for address, listener, future in futures:
            try:
                answer = future.result()
            except grpc.RpcError as exc:
                if listener is not None:
                    _close(routes.failed(address, exc.code(), time.monotonic_ns()))
                machine.failed(address, describe_error(exc), time.monotonic_ns())
            else:
                now = time.monotonic_ns()
                machine.answered(address, answer, now)
                _close(routes.heard(address, answer.report_port, now, listener is not None))
        for channel, _report, _assigner in self._peers.unwanted(machine):
            channel.close()
        _close(routes.forget(self._peers.addresses()))

    def _open_peer(self, address: str) -> tuple[grpc.Channel, ReportCall, AssignerCalls]:
        """The channel to ``address`` and its calls."""
        channel = open_channel(address, RECONNECT, tls=self._tls, token=self._auth_token)
        return channel, report_call(channel), assigner_calls(channel)

    def _open_listener(self, target: str) -> tuple[grpc.Channel, ReportCall]:
        """The channel to a server's report listener, secured as its address's, and Report."""
        channel = open_channel(target, RECONNECT, tls=self._tls, token=self._auth_token)
        return channel, report_call(channel)

    def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        machine = self._machine
        machine.clerk.close()
        if self._watch_call is not None:
            _cancel(self._watch_call)
        for thread in (self._thread, self._watcher):
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join()
        machine.close()
        with self._cycle_lock:
            while machine.due(time.monotonic_ns()) is not None:
                self._cycle()
        for channel, _report, _assigner in self._peers.clear():
            channel.close()
        _close(self._routes.forget(set()))
        self._unregister_metrics()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close(channels: list[grpc.Channel]) -> None:
    for channel in channels:
        channel.close()


def _cancel(future: grpc.Future[cpb.WatchResponse]) -> None:
    future.cancel()
