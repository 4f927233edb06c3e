"""``ratekeeper.Limiter``: local decisions, reported in the background by a daemon thread.

The thread only does I/O and sleeping; what to send, to whom and when is the
:class:`~ratekeeper.client.machine.LimiterMachine`'s. Each cycle sends at most one ``Report`` per
owning server, all in flight at once, each with a deadline well under the interval. A slow or
dead server costs the reporter at most its deadline per cycle; its keys keep their last
instructions until they expire (fail open, loudly: see ``ready``, ``stats`` and the log).

The reporter holds a lock of its own while it runs a cycle (so ``flush()`` from another thread
cannot interleave with it); the decision path never takes it.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import grpc

from ratekeeper.client.base import BaseLimiter
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.report import ReportCall, report_call
from ratekeeper.transport.channels import describe_error, open_channel

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(BaseLimiter):
    """A batch-reporting rate limiter; the arguments are :class:`BaseLimiter`'s."""

    def _start(self) -> None:
        self._channels: dict[str, tuple[grpc.Channel, ReportCall]] = {}
        self._cycle_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratekeeper-reporter", daemon=True)
        self.start()

    def start(self) -> None:
        """Start reporting (done already by the constructor; the asyncio twin needs a loop)."""
        if self._thread.ident is None:
            self._thread.start()

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

    def flush(self) -> None:
        """Report now, on the calling thread, and apply the answers."""
        with self._cycle_lock:
            self._cycle()

    def _cycle(self) -> None:
        machine = self._machine
        outbound = machine.collect(time.monotonic_ns())
        futures = [
            (out.address, self._call(out.address).future(out.request, timeout=out.timeout))
            for out in outbound
        ]
        for address, future in futures:
            try:
                answer = future.result()
            except grpc.RpcError as exc:
                machine.failed(address, describe_error(exc), time.monotonic_ns())
            else:
                machine.answered(address, answer, time.monotonic_ns())
        for address in set(self._channels) - machine.assignment.servers:
            self._channels.pop(address)[0].close()

    def _call(self, address: str) -> ReportCall:
        entry = self._channels.get(address)
        if entry is None:
            channel = open_channel(address)
            entry = self._channels[address] = (channel, report_call(channel))
        return entry[1]

    def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join()
        machine = self._machine
        machine.close()
        with self._cycle_lock:
            while machine.due(time.monotonic_ns()) is not None:
                self._cycle()
        for channel, _call in self._channels.values():
            channel.close()
        self._channels.clear()
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
