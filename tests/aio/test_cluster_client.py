"""``ratekeeper.aio.Limiter`` against cluster members on the test's event loop (real gRPC)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from ratekeeper.aio import Limiter
from ratekeeper.core.slices import Generation, even_split
from tests.client.members import Members

KEYS = [f"user{i}" for i in range(200)]


@pytest.fixture
async def members() -> AsyncIterator[Members]:
    fleet = Members(2)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


async def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_learns_routes_follows_and_fails_over(members: Members) -> None:
    a, b = members.addresses
    await members.publish(even_split([a, b], Generation(1, 1)))
    async with Limiter(a, limit="1000/s", report_interval=0.05, timeout=0.02) as lim:
        assert await lim.wait_ready(10)
        assert (lim.stats.owners, lim.stats.generation) == (2, (1, 1))
        admitted = sum(lim.allow(key) for key in KEYS)
        await lim.flush()
        assert members.misdirected() == []
        assert all(svc.admitted() for svc in members.services)
        await members.stop_member(0)  # the given address dies; b takes everything
        admitted += sum(lim.allow(key) for key in KEYS)
        await members.publish(even_split([b], Generation(1, 2)))
        await eventually(lambda: lim.stats.generation == (1, 2))
        await eventually(lambda: lim.ready)
    assert admitted == 2 * len(KEYS)
    # none lost; a report a applied as it died, never answering, is counted again by b
    # (conservative: after a crash the new owner holds none of a's counts)
    assert sum(svc.admitted() for svc in members.services) >= admitted


async def test_a_plain_server_is_a_single_owner() -> None:
    import grpc.aio

    from ratekeeper.server.report_servicer import add_report_servicer
    from tests.client.conftest import RecordingService

    service = RecordingService(None)
    server = grpc.aio.server()
    add_report_servicer(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with Limiter(f"127.0.0.1:{port}", report_interval=0.05) as lim:
            assert await lim.wait_ready(10)
            assert lim.stats.owners == 1
            lim.allow("k")
        assert service.admitted() == 1
    finally:
        await server.stop(None)
