"""``ratekeeper.aio.Limiter`` against the real servicer, both on the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from ratekeeper.aio import Limiter
from ratekeeper.backends.memory import MemoryStore
from ratekeeper.core.limits import parse_limit
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.server.report_servicer import ReportServicer as ReportService
from ratekeeper.server.report_servicer import add_report_servicer


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, ReportService, grpc.aio.Server]]:
    service = ReportService(ReportProcessor(StoreGate(MemoryStore()), lambda: None))
    server = grpc.aio.server()
    add_report_servicer(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", service, server
    finally:
        await server.stop(None)


async def test_reports_flow_and_close_sends_the_rest(
    server: tuple[str, ReportService, grpc.aio.Server],
) -> None:
    address, service, _ = server
    async with Limiter(address, limit="5/s", report_interval=0.05) as lim:
        assert sum(lim.allow("k") for _ in range(20)) == 5
        for _ in range(100):
            if service.reports:
                break
            await asyncio.sleep(0.01)
        assert lim.acquire("k", 0).limit == parse_limit("5/s")
        lim.allow("other")
    assert service.reports >= 2  # the cycle's report and the closing one
    assert lim.stats.failed == 0, lim.servers


async def test_the_same_names_as_the_sync_twin() -> None:
    import ratekeeper

    sync_api = {n for n in dir(ratekeeper.Limiter) if not n.startswith("_")}
    async_api = {n for n in dir(Limiter) if not n.startswith("_")}
    assert sync_api == async_api


async def test_a_dead_server_fails_open(
    server: tuple[str, ReportService, grpc.aio.Server],
) -> None:
    address, _, grpc_server = server
    await grpc_server.stop(None)
    lim = Limiter(address, limit="1000/s", report_interval=0.02, timeout=0.01)
    try:
        for _ in range(5):
            assert all(lim.allow("k") for _ in range(10))
            await asyncio.sleep(0.03)
        assert lim.stats.failed >= 1
    finally:
        await lim.close()
