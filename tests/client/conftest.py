"""Report servers for client tests: the real servicer on loopback, on a thread of its own.

The sync ``Limiter`` blocks its caller, so its server cannot share the test's event loop;
:class:`ReportServer` runs a ``grpc.aio`` server with the real :class:`ReportService` and the
in-memory store on a private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

import grpc
import grpc.aio
import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.client import base
from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.config import PolicyTree
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.server.report_servicer import ReportServicer as ReportService
from ratekeeper.server.report_servicer import add_report_servicer


def counts(request: pb.ReportRequest) -> list[tuple[int, int]]:
    """(admitted, rejected) of every key of ``request``: those sent in full, then those sent by
    id (the compact wire, ``client/interned.py``)."""
    full = [(k.admitted, k.rejected) for k in request.keys]
    return full + list(zip(request.known_admitted, request.known_rejected, strict=True))


def admitted_in(request: pb.ReportRequest, unknown: Iterable[int] = ()) -> int:
    """Hits ``request`` reports admitted, in either form, but for the ids ``unknown`` to the
    server (nothing of those is applied: the client sends them in full again)."""
    gone = set(unknown)
    known = zip(request.known_ids, request.known_admitted, strict=True)
    return sum(k.admitted for k in request.keys) + sum(n for i, n in known if i not in gone)


class RecordingService(ReportService):
    """The real service, keeping every request it applied (and its answer)."""

    def __init__(self, policy: PolicyTree | None) -> None:
        super().__init__(ReportProcessor(StoreGate(MemoryStore()), lambda: policy))
        self.requests: list[pb.ReportRequest] = []
        self._unknown: dict[tuple[str, int], tuple[int, ...]] = {}

    async def report(self, request: pb.ReportRequest) -> pb.ReportResponse:
        self.requests.append(request)
        response = await super().report(request)
        if response.unknown_ids:
            self._unknown[request.client_id, request.sequence] = tuple(response.unknown_ids)
        return response

    def applied(self) -> list[pb.ReportRequest]:
        """The requests that counted: a resent report (same client and number) counts once."""
        unique = {(r.client_id, r.sequence): r for r in self.requests}
        return list(unique.values())

    def admitted(self) -> int:
        return sum(
            admitted_in(r, self._unknown.get((r.client_id, r.sequence), ())) for r in self.applied()
        )


class ReportServer:
    """A ReportService on ``127.0.0.1:<port>``; :meth:`stop` to test failure modes."""

    def __init__(self, policy: PolicyTree | None = None) -> None:
        self.service = RecordingService(policy)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: grpc.aio.Server | None = None
        self.port: int = self.run(self._start())

    def run(self, coro: object) -> object:
        future: Future[object] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout=10)

    async def _start(self) -> int:
        self._server = grpc.aio.server()
        add_report_servicer(self.service, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def reports(self) -> int:
        return self.service.reports

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            self.run(server.stop(None))

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def report_server() -> Iterator[ReportServer]:
    server = ReportServer()
    try:
        yield server
    finally:
        server.close()


class FakeClock:
    """The client's monotonic clock, moved by hand (patched where the client reads it)."""

    def __init__(self) -> None:
        self.now = 1_000_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(base, "monotonic_ns", fake)
    return fake


def sans_io(*args: object, **kwargs: object) -> tuple[BaseLimiter, LimiterMachine]:
    """A Limiter with no driver: its decisions, and its machine to drive by hand."""
    lim = BaseLimiter(*args, **kwargs)  # type: ignore[arg-type]
    return lim, lim._machine
