"""``ratekeeper.Limiter``: local decisions, reported in the background by a daemon thread.

The decision methods (``allow``, ``acquire``) come from :class:`LimiterState` and never wait on
the network. Every ``report_interval`` the reporter thread drains the counts, sends at most one
``Report`` per owning server (all of them in flight at once, each with a deadline well under the
interval), and applies the answers. A slow or dead server costs the reporter at most its deadline
per cycle; its keys keep their last instructions until they expire (fail open), and nothing
queues up: counts accumulate in place and are sent next cycle.

The reporter thread holds a lock of its own while it reports (so ``flush()`` from another thread
cannot interleave with it); the decision path never takes it.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import grpc

from ratekeeper.client.state import Batch, LimiterState
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import ReportCall, report_call

__all__ = ["Limiter"]

log = logging.getLogger(__name__)


class Limiter(LimiterState):
    """A batch-reporting rate limiter; see :class:`LimiterState` for the arguments."""

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
        interval = self.report_interval
        next_at = time.monotonic() + interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.flush()
            except Exception:  # a bug must not end reporting: decisions would go stale
                log.exception("report cycle failed; next one in %.3fs", interval)
            # a cycle that overran skips the ticks it missed rather than bursting to catch up
            next_at = max(next_at + interval, time.monotonic())

    def flush(self) -> None:
        """Report now, on the calling thread, and apply the answers."""
        with self._cycle_lock:
            batches = self.collect(time.monotonic_ns())
            calls = [(batch, self._call(batch.server)) for batch in batches]
            futures = [(b, call.future(b.request, timeout=self.timeout)) for b, call in calls]
            for batch, future in futures:
                self._settle(batch, future)
            self._forget_channels()

    def _settle(self, batch: Batch, future: grpc.Future[pb.ReportResponse]) -> None:
        try:
            response = future.result()
        except grpc.RpcError:
            self.failed(batch)
        else:
            self.apply(batch, response, time.monotonic_ns())

    def _call(self, server: str) -> ReportCall:
        entry = self._channels.get(server)
        if entry is None:
            channel = grpc.insecure_channel(server)
            entry = self._channels[server] = (channel, report_call(channel))
        return entry[1]

    def _forget_channels(self) -> None:
        """Close channels to servers the assignment no longer names."""
        for server in set(self._channels) - self.assignment.servers:
            self._channels.pop(server)[0].close()

    def close(self) -> None:
        """Stop the reporter, send the last counts, release the channels. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.mark_closed()
        for _ in self.closing_rounds():
            self.flush()
        for channel, _call in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
